//! Fault injection: what the simulator answers in place of (or around) the service's own answer
//! when a scripted or random fault, or the quota, says so: scripted statuses, throttling,
//! dropped connections, delays, bodies cut off or slowed, odd bodies.

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::routes::pc_error;
use super::FaultAction;

/// Marks a response the connection layer must not send: it closes the connection instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

pub(super) fn dropped() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

/// The service's answer with an error `status`, and `Retry-After` as given: a 429 in the
/// throttling shape, which differs from every other error's (its message names Retry-After's
/// seconds, else `default_secs`), anything else in Partner Center's error body.
pub(super) fn error_status(status: u16, retry_after: Option<&str>, default_secs: u64) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if code == StatusCode::TOO_MANY_REQUESTS {
        let seconds = retry_after
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_secs);
        let body = json!({
            "statusCode": 429,
            "message": format!("Rate limit is exceeded. Try again in {seconds} seconds."),
        });
        (code, Json(body)).into_response()
    } else {
        let description = match status {
            500 => "An unexpected error occurred while processing the request.",
            502 => "Bad gateway: an upstream service did not answer.",
            503 => "The service is temporarily unavailable. Please try again later.",
            504 => "The request timed out waiting for an upstream service.",
            _ => code.canonical_reason().unwrap_or("The request failed."),
        };
        pc_error(code, u32::from(status), description)
    };
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Answers as a scripted fault says, `answer` being the service's own answer (run only when
/// the fault needs it). Shared by the qualification routes and the customer list.
pub(super) async fn apply_fault(
    action: FaultAction,
    retry_after_secs: u64,
    answer: impl std::future::Future<Output = Response>,
) -> Response {
    match action {
        FaultAction::Status {
            status,
            retry_after,
        } => error_status(status, retry_after.as_deref(), retry_after_secs),
        FaultAction::Drop => dropped(),
        FaultAction::Delay(d) => {
            tokio::time::sleep(d).await;
            answer.await
        }
        FaultAction::SlowAnswer(d) => {
            let response = answer.await;
            tokio::time::sleep(d).await;
            response
        }
        FaultAction::Cut => cut_answer(answer.await, None).await,
        FaultAction::CutStatus {
            status,
            retry_after,
        } => {
            let response = error_status(status, retry_after.as_deref(), retry_after_secs);
            cut_answer(response, None).await
        }
        FaultAction::SlowBody(d) => cut_answer(answer.await, Some(d)).await,
        FaultAction::Json { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let json = [(header::CONTENT_TYPE, "application/json; charset=utf-8")];
            (status, json, body).into_response()
        }
        FaultAction::Html => {
            let page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body><form action=\"/login\">Sign in to continue</form></body></html>";
            let html = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
            (StatusCode::OK, html, page).into_response()
        }
        FaultAction::Big(size) => {
            let (parts, _) = answer.await.into_parts();
            let mut body = vec![b' '; size];
            if size > 0 {
                body[0] = b'{';
                body[size - 1] = b'}';
            }
            Response::from_parts(parts, axum::body::Body::from(body))
        }
    }
}

/// Sends the answer's status, headers (with its full `Content-Length`) and the first half of
/// its body; then, with `rest_after`, the rest that much later (a slow body), else breaks the
/// connection (an answer cut off after the write landed).
async fn cut_answer(response: Response, rest_after: Option<std::time::Duration>) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, super::MAX_BODY)
        .await
        .unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    let half = bytes.len() / 2;
    let body = CutBody {
        full: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        first: Some(bytes.slice(..half)),
        rest: rest_after.map(|_| bytes.slice(half..)),
        pause: Box::pin(tokio::time::sleep(
            rest_after.unwrap_or(std::time::Duration::from_millis(50)),
        )),
        done: false,
    };
    Response::from_parts(parts, axum::body::Body::new(body))
}

/// A body that promises `full` bytes, yields its first part, waits, then yields the rest (a
/// slow body) or fails (a cut one: hyper then closes the connection mid-answer).
struct CutBody {
    full: u64,
    first: Option<Bytes>,
    rest: Option<Bytes>,
    pause: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// The rest (or the error) has gone out: the body is complete.
    done: bool,
}

impl hyper::body::Body for CutBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(first))));
        }
        if std::future::Future::poll(this.pause.as_mut(), cx).is_pending() {
            return Poll::Pending;
        }
        if std::mem::replace(&mut this.done, true) {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(match this.rest.take() {
            Some(rest) => Ok(hyper::body::Frame::data(rest)),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "answer cut off on purpose by the simulator",
            )),
        }))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.full)
    }
}
