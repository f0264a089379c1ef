//! Turns a panic inside one row's processing into a value, so that a bug fails that row
//! (`error_code` `internal`) instead of silently dropping it with its worker.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A panic caught while polling a row's future: a bug, reported with the row instead of losing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Panicked {
    /// The text the panic was raised with.
    pub message: String,
}

/// Runs `future` to completion; a panic while polling it becomes `Err(Panicked)`.
pub async fn catch<F: Future>(future: F) -> Result<F::Output, Panicked> {
    CatchUnwind(Box::pin(future)).await
}

struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The future is not polled again after a panic, so no broken invariant is observed.
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(Panicked {
                message: panic_message(payload.as_ref()),
            })),
        }
    }
}

/// The text a panic was raised with.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message_and_values_pass_through() {
        assert_eq!(catch(async { 7 }).await, Ok(7));
        let caught = catch(async {
            tokio::task::yield_now().await;
            let secs: f64 = "1e30".parse().unwrap_or(0.0);
            std::time::Duration::from_secs_f64(secs)
        })
        .await;
        let panicked = caught.expect_err("panicked");
        assert!(panicked.message.contains("Duration"), "{panicked}");
        assert_eq!(panicked.to_string(), panicked.message);
    }
}
