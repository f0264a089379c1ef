//! Request ids the service has answered. Partner Center keys idempotency on `MS-RequestId`, and
//! its headers page says a client resets the id after any answer: a strict service may answer a
//! reused id with the answer it gave before, without acting again. The simulator does so, so a
//! client that reused an id after an answer gets that earlier answer back and a test sees it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// At most this many answers are remembered (the oldest are forgotten first): enough for any
/// test's retries, bounded for a long benchmark.
const REMEMBERED: usize = 16_384;

/// One remembered answer: status, content type and body.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

/// The answers given, by `MS-RequestId`.
#[derive(Default)]
pub(crate) struct Answered {
    inner: Mutex<(HashMap<String, Answer>, VecDeque<String>)>,
}

/// The `MS-RequestId` of a request, when it carries one.
pub(super) fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("ms-requestid")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

impl Answered {
    /// The answer given earlier to `id`, rebuilt.
    pub(super) fn replay(&self, id: &str) -> Option<Response> {
        let answer = self.inner.lock().ok()?.0.get(id).cloned()?;
        let content_type = answer.content_type.map(|v| [(header::CONTENT_TYPE, v)]);
        Some((answer.status, content_type, Body::from(answer.body)).into_response())
    }

    /// Reads `response` whole, remembers it for `id` (the first answer stays) and hands it on.
    pub(super) async fn remember(&self, id: &str, response: Response) -> Response {
        let (parts, body) = response.into_parts();
        let Ok(body) = axum::body::to_bytes(body, super::MAX_BODY).await else {
            return Response::from_parts(parts, Body::empty());
        };
        let answer = Answer {
            status: parts.status,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            body: body.clone(),
        };
        if let Ok(mut guard) = self.inner.lock() {
            let (map, order) = &mut *guard;
            if !map.contains_key(id) {
                map.insert(id.to_string(), answer);
                order.push_back(id.to_string());
                while order.len() > REMEMBERED {
                    if let Some(old) = order.pop_front() {
                        map.remove(&old);
                    }
                }
            }
        }
        Response::from_parts(parts, Body::from(body))
    }
}
