//! Turns a panic inside one row's processing into a value, so that a bug fails that row
//! (`error_code` `internal`) instead of silently dropping it with its worker.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use crate::domain::error::panic_message;

/// Runs `future` to completion; a panic while polling it (a bug) becomes `on_panic` of the
/// text the panic was raised with, so the row is reported instead of lost. The future is not
/// polled again after a panic, so no broken invariant is observed (hence `AssertUnwindSafe`).
pub async fn catch<F: Future>(future: F, on_panic: impl FnOnce(String) -> F::Output) -> F::Output {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(value) => value,
        Err(payload) => on_panic(panic_message(payload.as_ref())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message_and_values_pass_through() {
        assert_eq!(catch(async { 7 }, |_| 0).await, 7);
        let caught = catch(
            async {
                tokio::task::yield_now().await;
                let secs: f64 = "1e30".parse().unwrap_or(0.0);
                format!("{:?}", std::time::Duration::from_secs_f64(secs))
            },
            |message| format!("panicked: {message}"),
        )
        .await;
        assert!(caught.starts_with("panicked: "), "{caught}");
        assert!(caught.contains("Duration"), "{caught}");
    }
}
