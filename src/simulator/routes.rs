//! The HTTP surface's map: the router, the Partner Center error body, the gate every `/v1/`
//! request passes (authentication, MFA, quota, faults, latency, in the service's order) and the
//! `/_sim/` inspection routes. The handlers live in `qualifications`, `customers` and `oauth`;
//! what a fault answers, in `faults`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::faults::{apply_fault, dropped, error_status, DropConnection};
use super::oauth::{authorize, device, form_route, token};
use super::qualifications::{create_qualification, list_qualifications, list_validations};
use super::state::Shared;
use super::FaultAction;
use crate::domain::model::CustomerId;

/// Builds the router with every route and the API gate.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/token", form_route(token::token_v1))
        .route("/{tenant}/oauth2/v2.0/token", form_route(token::token_v2))
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            form_route(device::devicecode),
        )
        .route("/{tenant}/oauth2/v2.0/authorize", get(authorize::authorize))
        .route(
            "/v1/customers/{id}/qualifications",
            get(list_qualifications).post(create_qualification),
        )
        .route("/v1/customers/all/validations", get(list_validations))
        .route("/v1/customers", get(super::customers::list_customers))
        .route("/_sim/requests", get(sim_requests))
        .route("/_sim/health", get(|| async { "ok" }))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

/// The Partner Center error body: `{"code","description","data","source"}`.
pub(super) fn pc_error(status: StatusCode, code: u32, description: impl Into<String>) -> Response {
    let body = json!({
        "code": code,
        "description": description.into(),
        "data": [],
        "source": "PartnerFD",
    });
    (status, Json(body)).into_response()
}

async fn not_found(request: Request) -> Response {
    pc_error(
        StatusCode::NOT_FOUND,
        404,
        format!("The resource {} was not found.", request.uri().path()),
    )
}

// ---------------------------------------------------------------------------------------------
// The API gate: authentication, throttling, faults and latency, in the service's order.

async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    // The real front door echoes the tracing ids, which clients log with their results.
    let mut echoed = HeaderMap::new();
    for name in ["ms-correlationid", "ms-requestid"] {
        if let Some(value) = request.headers().get(name) {
            echoed.insert(name, value.clone());
        }
    }
    let arrived = tokio::time::Instant::now();
    let mut response = api_pipeline(&shared, request, next).await;
    let latency = shared.settings.latency;
    if !latency.is_zero() {
        // The answer is held until `latency` after the request arrived, processing included.
        // Timer granularity and the write add a little on top; the bench measures what a client
        // actually sees and reports it beside its figures, rather than aiming early to hide it.
        tokio::time::sleep_until(arrived + latency).await;
    }
    response.headers_mut().extend(echoed);
    response
}

async fn api_pipeline(shared: &Shared, request: Request, next: Next) -> Response {
    if !authorized(shared, request.headers()) {
        return pc_error(
            StatusCode::UNAUTHORIZED,
            401,
            "Unauthorized: the access token is missing, invalid or expired.",
        );
    }
    // "Required" on every call per Microsoft's REST headers page. The service's answer to a call
    // without it is not published; a 400 in its error body is what its other refusals of a
    // malformed request look like.
    if !request.headers().contains_key("ms-contract-version") {
        return pc_error(
            StatusCode::BAD_REQUEST,
            MISSING_CONTRACT_VERSION,
            "The MS-Contract-Version header is required.",
        );
    }
    // The customer list keeps its own replay, of the page served per (continuation token,
    // MS-RequestId), and its scripted faults cut or slow the body it hands back.
    let list = request.uri().path() == "/v1/customers";
    let Some(id) = super::answered::request_id(request.headers()).filter(|_| !list) else {
        return admitted(shared, request, next).await;
    };
    if let Some(earlier) = shared.answered.replay(&id) {
        return earlier;
    }
    let response = admitted(shared, request, next).await;
    // No answer given: a resend under the same id is served afresh. Nor is a refused sign-in
    // (MFA) remembered: authentication comes before the service takes the call in. A processed
    // answer was remembered before a fault cut or slowed it.
    if response.extensions().get::<DropConnection>().is_some()
        || response.status() == StatusCode::UNAUTHORIZED
        || response.extensions().get::<Processed>().is_some()
    {
        return response;
    }
    shared.answered.remember(&id, response).await
}

/// Marks a response whose handler answer is already remembered (a fault wraps it).
#[derive(Debug, Clone, Copy)]
struct Processed;

/// The gate after authentication: quota, MFA, faults, then the handler.
async fn admitted(shared: &Shared, request: Request, next: Next) -> Response {
    if shared.mfa_required.refuses() {
        // The service's answer to an App+User token without the MFA claim (enforced since 2026).
        return pc_error(
            StatusCode::UNAUTHORIZED,
            MFA_REQUIRED,
            "Multi-factor authentication is required: the access token has no MFA claim. Sign in again with multi-factor authentication.",
        );
    }
    if let Err(wait) = shared.admit() {
        // Whole seconds, as the service sends them: at least the configured value, and never
        // less than the time until the quota admits a request again.
        let until = u64::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(u64::MAX);
        let secs = shared.settings.retry_after_secs.max(until);
        return error_status(429, Some(&secs.to_string()), secs);
    }
    match shared.roll_fault() {
        Some(true) => return dropped(),
        // The service's own 503, as a scripted one answers it.
        Some(false) => return error_status(503, None, 0),
        None => {}
    }
    let scripted = customer_in_path(request.uri().path()).and_then(|id| shared.next_scripted(id));
    let Some(action) = scripted else {
        return next.run(request).await;
    };
    let retry_after_secs = shared.settings.retry_after_secs;
    let request_id = super::answered::request_id(request.headers());
    // A cut status is not remembered either: remembering reads its body whole.
    let wraps = matches!(
        action,
        FaultAction::Cut
            | FaultAction::CutStatus { .. }
            | FaultAction::SlowBody(_)
            | FaultAction::Big(_)
            | FaultAction::SlowAnswer(_)
    );
    // The handler's answer, remembered whole before a fault changes its delivery.
    let answer = async move {
        let answer = next.run(request).await;
        match request_id {
            Some(id) => shared.answered.remember(&id, answer).await,
            None => answer,
        }
    };
    let mut response = apply_fault(action, retry_after_secs, answer).await;
    if wraps {
        response.extensions_mut().insert(Processed);
    }
    response
}

/// The error code of a 400 for a call without `MS-Contract-Version` (the simulator's own).
const MISSING_CONTRACT_VERSION: u32 = 400;

/// The error code of a 401 for a token without the multi-factor authentication claim.
const MFA_REQUIRED: u32 = 900421;

/// Whether a request's `Content-Type` is `mime`, its parameters (`charset`) aside.
pub(super) fn content_type_is(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(mime))
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && shared.access_token_valid(token.trim())
        })
}

/// The customer a `/v1/customers/{id}/...` path names, when it names one.
fn customer_in_path(path: &str) -> Option<CustomerId> {
    CustomerId::parse(path.strip_prefix("/v1/customers/")?.split('/').next()?)
}

async fn sim_requests(State(shared): State<Arc<Shared>>) -> Response {
    (StatusCode::OK, Json(shared.requests())).into_response()
}
