//! The HTTP surface: the AAD token endpoint, the Partner Center routes and the `/_sim` inspection routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::parse::form_decode;
use super::state::{CreateOutcome, ReadOutcome, Shared, Standing};
use super::{oauth, shapes, FaultAction, SANDBOX_TENANT};
use crate::domain::model::{ApiContract, CustomerId, EducationSegment, Qualification};
use crate::domain::qualification::{listing, Field, NOT_SETTABLE};

/// Marks a response the connection layer must not send: it closes the connection instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

/// Builds the router with every route and the API gate.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/token", post(token))
        .route("/{tenant}/oauth2/v2.0/token", post(oauth::token_v2))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(oauth::devicecode))
        .route("/{tenant}/oauth2/v2.0/authorize", get(oauth::authorize))
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

// ---------------------------------------------------------------------------------------------
// Error bodies

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

/// The throttling answer, whose shape differs from every other error's.
fn throttled(retry_after: Option<&str>, seconds: u64) -> Response {
    let body = json!({
        "statusCode": 429,
        "message": format!("Rate limit is exceeded. Try again in {seconds} seconds."),
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

pub(super) fn dropped() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

fn unavailable() -> Response {
    pc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        503,
        "The service is temporarily unavailable. Please try again later.",
    )
}

pub(super) fn scripted_status(
    status: u16,
    retry_after: Option<&str>,
    default_secs: u64,
) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if code == StatusCode::TOO_MANY_REQUESTS {
        let secs = retry_after
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_secs);
        return throttled(retry_after, secs);
    }
    let description = match status {
        500 => "An unexpected error occurred while processing the request.".to_string(),
        502 => "Bad gateway: an upstream service did not answer.".to_string(),
        503 => "The service is temporarily unavailable. Please try again later.".to_string(),
        504 => "The request timed out waiting for an upstream service.".to_string(),
        _ => code
            .canonical_reason()
            .unwrap_or("The request failed.")
            .to_string(),
    };
    let mut response = pc_error(code, u32::from(status), description);
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
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
    let echoed: Vec<(header::HeaderName, HeaderValue)> = ["ms-correlationid", "ms-requestid"]
        .into_iter()
        .filter_map(|name| {
            let value = request.headers().get(name)?.clone();
            Some((header::HeaderName::from_static(name), value))
        })
        .collect();
    let arrived = tokio::time::Instant::now();
    let mut response = api_pipeline(&shared, request, next).await;
    let latency = shared.settings.latency;
    if !latency.is_zero() {
        // The answer is held until `latency` after the request arrived, processing included.
        // Timer granularity and the write add a little on top; the bench measures what a client
        // actually sees and reports it beside its figures, rather than aiming early to hide it.
        tokio::time::sleep_until(arrived + latency).await;
    }
    for (name, value) in echoed {
        response.headers_mut().insert(name, value);
    }
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
    if shared.switches.mfa_refuses() {
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
        return throttled(Some(&secs.to_string()), secs);
    }
    match shared.roll_fault() {
        Some(true) => return dropped(),
        Some(false) => return unavailable(),
        None => {}
    }
    if let Some(id) = customer_in_path(request.uri().path()) {
        if let Some(action) = shared.next_scripted(id) {
            let retry_after_secs = shared.settings.retry_after_secs;
            return apply_fault(action, retry_after_secs, next.run(request)).await;
        }
    }
    next.run(request).await
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
        } => scripted_status(status, retry_after.as_deref(), retry_after_secs),
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
        FaultAction::SlowBody(d) => cut_answer(answer.await, Some(d)).await,
        FaultAction::Json { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response(),
        FaultAction::Html => {
            let page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body><form action=\"/login\">Sign in to continue</form></body></html>";
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                page,
            )
                .into_response()
        }
        FaultAction::Big(size) => {
            let (parts, _) = answer.await.into_parts();
            let mut body = vec![b' '; size];
            if let Some(first) = body.first_mut() {
                *first = b'{';
            }
            if let Some(last) = body.last_mut() {
                *last = b'}';
            }
            Response::from_parts(parts, axum::body::Body::from(body))
        }
    }
}

/// The error code of a 401 for a token without the multi-factor authentication claim.
const MFA_REQUIRED: u32 = 900421;

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
    /// The slow body's rest has gone out: the body is complete.
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
        if this.done {
            return Poll::Ready(None);
        }
        match this.rest.take() {
            Some(rest) => {
                this.done = true;
                Poll::Ready(Some(Ok(hyper::body::Frame::data(rest))))
            }
            None => {
                this.done = true;
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "answer cut off on purpose by the simulator",
                ))))
            }
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.full)
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && shared.access_token_valid(token.trim())
}

/// The customer a `/v1/customers/{id}/...` path names, when it names one.
fn customer_in_path(path: &str) -> Option<CustomerId> {
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(""), Some("v1"), Some("customers"), Some(id)) => CustomerId::parse(id),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// AAD token endpoint

pub(crate) fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let trace_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let timestamp = super::parse::rfc3339(std::time::SystemTime::now());
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
    });
    (status, Json(body)).into_response()
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    oauth::token_latency(&shared).await;
    if shared.switches.token_down() {
        return oauth::token_service_down();
    }
    if tenant != SANDBOX_TENANT {
        return oauth::unknown_tenant(&tenant);
    }
    let fields = oauth::form_fields(&headers, &body);
    let field = |name: &str| oauth::field(&fields, name);

    let Some(grant_type) = field("grant_type") else {
        return oauth::missing("grant_type");
    };
    if grant_type != "refresh_token" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant_type}'."),
        );
    }
    if let Err(refused) =
        oauth::check_client(&shared, &tenant, field("client_id"), field("client_secret"))
    {
        return refused;
    }
    let Some(refresh_token) = field("refresh_token") else {
        return oauth::missing("refresh_token");
    };
    let resource = shared.oauth.resource();
    match field("resource") {
        Some(r) if r == resource => {}
        Some(other) => return oauth::wrong_resource(&tenant, other),
        None => return oauth::missing("resource"),
    }
    if !shared.refresh_token_valid(refresh_token) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70000,
            "Provided grant is invalid or malformed. The refresh token was not issued to this application or has been revoked.",
        );
    }

    let (access_token, new_refresh) = shared.issue_tokens();
    let ttl = shared.settings.token_ttl.as_secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expires_in = match shared.token_expires_in {
        Some(figure) => json!(figure),
        None => json!(ttl.to_string()),
    };
    let body = json!({
        "token_type": "Bearer",
        "scope": "user_impersonation",
        "expires_in": expires_in,
        "ext_expires_in": ttl.to_string(),
        "expires_on": now.saturating_add(ttl).to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "access_token": access_token,
        "refresh_token": new_refresh,
        // An unsigned JWT ({"alg":"none"}) naming the sandbox user; nothing checks it.
        "id_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhdWQiOiIwMDAwMDAwMC01YTlkLTRiMGMtOGUxMS01YTlkYjBjOGUxMTEiLCJpc3MiOiJodHRwczovL3N0cy53aW5kb3dzLm5ldC9zYW5kYm94LyIsInVwbiI6ImFkbWluQHNhbmRib3gub25taWNyb3NvZnQuY29tIn0.",
    });
    (StatusCode::OK, Json(body)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Partner Center routes

/// Error codes this simulator answers with; the real ones are undocumented beyond a few examples.
mod codes {
    pub const INVALID_CUSTOMER_ID: u32 = 900118;
    pub const TENANT_NOT_FOUND: u32 = 60003;
    pub const NO_RELATIONSHIP: u32 = 20002;
    pub const MALFORMED_BODY: u32 = 900101;
    pub const INVALID_QUALIFICATION: u32 = 600030;
    pub const INVALID_SEGMENT: u32 = 600031;
    pub const UNEXPECTED_FIELD: u32 = 600032;
    pub const UNEXPECTED_QUERY: u32 = 600033;
    pub const CONTRACT_RETIRED: u32 = 600034;
    pub const INVALID_WEBSITE: u32 = 600035;
    pub const INVALID_VALIDATION_CODE: u32 = 600039;
    pub const VETTING_EXHAUSTED: u32 = 600040;
    pub const ALREADY_EXISTS: u32 = 600041;
    pub const NO_REMAINING_CREATES: u32 = 600042;
    pub const UNSUPPORTED_MEDIA_TYPE: u32 = 415;
}

/// The raw `{id}` segment of `/v1/customers/{id}/...`, read from the URI so that an id axum
/// cannot percent-decode still gets the service's 400 body rather than a plain-text rejection.
fn customer_segment(path: &str) -> String {
    path.split('/').nth(3).unwrap_or_default().to_string()
}

fn invalid_customer(id: &str) -> Response {
    pc_error(
        StatusCode::BAD_REQUEST,
        codes::INVALID_CUSTOMER_ID,
        format!("The customer id '{id}' is invalid: expected a GUID."),
    )
}

fn tenant_not_found(id: CustomerId) -> Response {
    pc_error(
        StatusCode::NOT_FOUND,
        codes::TENANT_NOT_FOUND,
        format!("Tenant not found: {id}."),
    )
}

fn no_relationship() -> Response {
    pc_error(
        StatusCode::FORBIDDEN,
        codes::NO_RELATIONSHIP,
        "No relationship between caller and account.",
    )
}

async fn list_qualifications(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let id = customer_segment(uri.path());
    let Some(id) = CustomerId::parse(&id) else {
        return invalid_customer(&id);
    };
    match shared.read(id) {
        ReadOutcome::Records(records) => shapes::list(shared.settings.answer_shape, records),
        ReadOutcome::NotFound => tenant_not_found(id),
        ReadOutcome::NoRelationship => no_relationship(),
    }
}

async fn list_validations(State(shared): State<Arc<Shared>>) -> Response {
    (StatusCode::OK, Json(shared.validations_json())).into_response()
}

async fn sim_requests(State(shared): State<Arc<Shared>>) -> Response {
    (StatusCode::OK, Json(shared.requests())).into_response()
}

/// A create request that passed the contract checks.
#[derive(Debug, PartialEq)]
struct CreateRequest {
    qualification: Qualification,
    validation_code: Option<String>,
}

/// A 400 answer: the service's code and what is wrong.
#[derive(Debug)]
struct Reject(u32, String);

async fn create_qualification(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = customer_segment(uri.path());
    let Some(id) = CustomerId::parse(&id) else {
        return invalid_customer(&id);
    };
    match shared.standing(id) {
        Standing::NotFound => return tenant_not_found(id),
        Standing::NoRelationship => return no_relationship(),
        Standing::Active => {}
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return pc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            "The request's Content-Type must be application/json.",
        );
    }
    let request = match validate_body(&body, query.as_deref(), shared.settings.require_2022) {
        Ok(r) => r,
        Err(Reject(code, description)) => {
            return pc_error(StatusCode::BAD_REQUEST, code, description)
        }
    };
    if let Some(code) = &request.validation_code {
        if !shared.validation_known(code) {
            return pc_error(
                StatusCode::BAD_REQUEST,
                codes::INVALID_VALIDATION_CODE,
                format!(
                    "The validation code '{code}' does not match any of the partner's validations."
                ),
            );
        }
    }
    let name = request.qualification.as_str();
    match shared.create(id, request.qualification, request.validation_code.as_deref()) {
        CreateOutcome::Created(record) => shapes::created(shared.settings.answer_shape, record),
        CreateOutcome::AlreadyHeld => pc_error(
            StatusCode::CONFLICT,
            codes::ALREADY_EXISTS,
            format!("Customer already has the {name} qualification."),
        ),
        CreateOutcome::Exhausted => pc_error(
            StatusCode::BAD_REQUEST,
            codes::VETTING_EXHAUSTED,
            format!("Vetting attempts exhausted: the {name} qualification may be requested at most 3 times per customer."),
        ),
        CreateOutcome::NoRemainingCreates => pc_error(
            StatusCode::BAD_REQUEST,
            codes::NO_REMAINING_CREATES,
            format!(
                "There are no remaining creates for validation code '{}'.",
                request.validation_code.as_deref().unwrap_or_default()
            ),
        ),
        CreateOutcome::NotFound => tenant_not_found(id),
        CreateOutcome::NoRelationship => no_relationship(),
    }
}

/// Checks a create body and query against the 2021 and 2022 contracts.
fn validate_body(
    body: &[u8],
    query: Option<&str>,
    require_2022: bool,
) -> Result<CreateRequest, Reject> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Reject(
            codes::MALFORMED_BODY,
            format!("The request body is not valid JSON: {e}."),
        )
    })?;
    let Value::Object(object) = value else {
        return Err(Reject(
            codes::MALFORMED_BODY,
            "The request body must be a JSON object.".into(),
        ));
    };
    let query = query.filter(|q| !q.is_empty());
    if object.contains_key("Qualification") {
        if require_2022 {
            return Err(Reject(
                codes::CONTRACT_RETIRED,
                "The {\"Qualification\": ...} request contract is no longer supported; send {\"qualification\": ..., \"educationSegment\": ...}.".into(),
            ));
        }
        validate_2021(&object, query)
    } else {
        validate_2022(&object, query)
    }
}

fn validate_2021(
    object: &Map<String, Value>,
    query: Option<&str>,
) -> Result<CreateRequest, Reject> {
    if let Some(key) = object.keys().find(|k| *k != "Qualification") {
        return Err(Reject(
            codes::UNEXPECTED_FIELD,
            format!(
                "Unexpected field '{key}': a body with 'Qualification' may contain nothing else."
            ),
        ));
    }
    let qualification = qualification_value(object.get("Qualification"), "Qualification")?;
    let validation_code = if qualification.requires(Field::ValidationCode, ApiContract::V2021) {
        let pairs = query.map(form_decode).unwrap_or_default();
        if let Some((key, _)) = pairs.iter().find(|(k, _)| k != "code") {
            return Err(Reject(
                codes::UNEXPECTED_QUERY,
                format!("Unexpected query parameter '{key}'."),
            ));
        }
        let code = pairs.into_iter().map(|(_, v)| v).next().ok_or_else(|| {
            Reject(
                codes::INVALID_VALIDATION_CODE,
                format!(
                    "The 'code' query parameter (validation code) is required for {qualification}."
                ),
            )
        })?;
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Reject(
                codes::INVALID_VALIDATION_CODE,
                format!("The validation code '{code}' is invalid: it must be a number."),
            ));
        }
        Some(code)
    } else {
        if let Some(q) = query {
            return Err(Reject(
                codes::UNEXPECTED_QUERY,
                format!("Query parameters are not allowed for {qualification}: '{q}'."),
            ));
        }
        None
    };
    Ok(CreateRequest {
        qualification,
        validation_code,
    })
}

fn validate_2022(
    object: &Map<String, Value>,
    query: Option<&str>,
) -> Result<CreateRequest, Reject> {
    if let Some(q) = query {
        return Err(Reject(
            codes::UNEXPECTED_QUERY,
            format!("Query parameters are not allowed on this request: '{q}'."),
        ));
    }
    const KEYS: [&str; 4] = [
        "qualification",
        "educationSegment",
        "website",
        "validationCode",
    ];
    if let Some(key) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(Reject(
            codes::UNEXPECTED_FIELD,
            format!("Unknown field '{key}'; expected qualification, educationSegment, website or validationCode."),
        ));
    }
    // Null fields count as absent, as the service's deserializer treats them.
    let present = |k: &str| object.get(k).filter(|v| !v.is_null());
    let qualification = qualification_value(present("qualification"), "qualification")?;
    // Each field as the qualification's row in the table has it: required, or not allowed.
    let field = |key: &str, field, code| match present(key) {
        None if qualification.requires(field, ApiContract::V2022) => {
            let hint = match field {
                Field::Segment => ": K12 or HigherEducation",
                _ => "",
            };
            let required = format!("The field '{key}' is required for {qualification}{hint}.");
            Err(Reject(code, required))
        }
        Some(_) if !qualification.carries(field) => Err(Reject(
            code,
            format!("The field '{key}' is not allowed for {qualification}."),
        )),
        value => Ok(value),
    };

    if let Some(v) = field("educationSegment", Field::Segment, codes::INVALID_SEGMENT)? {
        let ok = v.as_str().is_some_and(|s| {
            [EducationSegment::K12, EducationSegment::HigherEducation]
                .iter()
                .any(|seg| seg.as_str() == s)
        });
        if !ok {
            return Err(Reject(
                codes::INVALID_SEGMENT,
                format!("The field 'educationSegment' has the invalid value {v}; expected K12 or HigherEducation."),
            ));
        }
    }

    match field("website", Field::Website, codes::INVALID_WEBSITE)? {
        None | Some(Value::String(_)) => {}
        Some(v) => {
            return Err(Reject(
                codes::INVALID_WEBSITE,
                format!("The field 'website' must be a string, got {v}."),
            ))
        }
    }

    let code = codes::INVALID_VALIDATION_CODE;
    let validation_code = match field("validationCode", Field::ValidationCode, code)? {
        None => None,
        Some(Value::String(code)) => Some(code.clone()),
        Some(v) => {
            return Err(Reject(
                codes::INVALID_VALIDATION_CODE,
                format!("The field 'validationCode' must be a string, got {v}."),
            ))
        }
    };
    Ok(CreateRequest {
        qualification,
        validation_code,
    })
}

fn qualification_value(value: Option<&Value>, field: &str) -> Result<Qualification, Reject> {
    let Some(value) = value else {
        return Err(Reject(
            codes::INVALID_QUALIFICATION,
            format!("The field '{field}' is required."),
        ));
    };
    let Some(text) = value.as_str() else {
        return Err(Reject(
            codes::INVALID_QUALIFICATION,
            format!("The field '{field}' must be a string, got {value}."),
        ));
    };
    if let Some(q) = Qualification::named(text) {
        return Ok(q);
    }
    if NOT_SETTABLE.contains(&text) {
        return Err(Reject(
            codes::INVALID_QUALIFICATION,
            format!("The qualification '{text}' cannot be set through this API."),
        ));
    }
    Err(Reject(
        codes::INVALID_QUALIFICATION,
        format!(
            "Unknown qualification '{text}'; expected {}.",
            listing(false)
        ),
    ))
}
