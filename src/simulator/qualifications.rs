//! The customer qualification routes: listing a customer's qualifications, the partner's
//! validation codes, and creating a qualification under the 2021 and 2022 request contracts,
//! refused as the service refuses.

// The `Err` of these checks is the refusal itself, an HTTP answer sent once per refused request:
// boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use super::parse::form_decode;
use super::routes::{content_type_is, pc_error};
use super::shapes;
use super::state::{CreateOutcome, Missing, Shared};
use crate::domain::model::{ApiContract, CustomerId, EducationSegment, Qualification};
use crate::domain::qualification::{listing, Field, NOT_SETTABLE};

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

/// The customer of `/v1/customers/{id}/...`, its raw segment read from the URI so that an id axum
/// cannot percent-decode still gets the service's 400 body rather than a plain-text rejection.
fn customer(uri: &Uri) -> Result<CustomerId, Response> {
    let id = uri.path().split('/').nth(3).unwrap_or_default();
    CustomerId::parse(id).ok_or_else(|| {
        pc_error(
            StatusCode::BAD_REQUEST,
            codes::INVALID_CUSTOMER_ID,
            format!("The customer id '{id}' is invalid: expected a GUID."),
        )
    })
}

/// The answer about a customer the partner may not act on.
fn missing(id: CustomerId, missing: Missing) -> Response {
    match missing {
        Missing::NotFound => pc_error(
            StatusCode::NOT_FOUND,
            codes::TENANT_NOT_FOUND,
            format!("Tenant not found: {id}."),
        ),
        Missing::NoRelationship => pc_error(
            StatusCode::FORBIDDEN,
            codes::NO_RELATIONSHIP,
            "No relationship between caller and account.",
        ),
    }
}

pub(super) async fn list_qualifications(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
) -> Result<Response, Response> {
    let id = customer(&uri)?;
    let records = shared.read(id).map_err(|m| missing(id, m))?;
    Ok(shapes::list(shared.settings.answer_shape, records))
}

pub(super) async fn list_validations(State(shared): State<Arc<Shared>>) -> Response {
    (StatusCode::OK, Json(shared.validations_json())).into_response()
}

/// The service's 400 answer: its code and what is wrong.
fn bad<T>(code: u32, description: impl Into<String>) -> Result<T, Response> {
    Err(pc_error(StatusCode::BAD_REQUEST, code, description))
}

pub(super) async fn create_qualification(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Response> {
    let id = customer(&uri)?;
    shared.standing(id).map_err(|m| missing(id, m))?;
    if !content_type_is(&headers, "application/json") {
        return Err(pc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            "The request's Content-Type must be application/json.",
        ));
    }
    let (qualification, validation_code) =
        validate_body(&body, query.as_deref(), shared.settings.require_2022)?;
    let validation_code = validation_code.as_deref();
    if let Some(code) = validation_code.filter(|code| !shared.validation_known(code)) {
        return bad(
            codes::INVALID_VALIDATION_CODE,
            format!(
                "The validation code '{code}' does not match any of the partner's validations."
            ),
        );
    }
    let name = qualification.as_str();
    let outcome = shared.create(id, qualification, validation_code);
    match outcome.map_err(|m| missing(id, m))? {
        CreateOutcome::Created(record) => Ok(shapes::created(shared.settings.answer_shape, record)),
        CreateOutcome::AlreadyHeld => Err(pc_error(
            StatusCode::CONFLICT,
            codes::ALREADY_EXISTS,
            format!("Customer already has the {name} qualification."),
        )),
        CreateOutcome::Exhausted => bad(
            codes::VETTING_EXHAUSTED,
            format!("Vetting attempts exhausted: the {name} qualification may be requested at most 3 times per customer."),
        ),
        CreateOutcome::NoRemainingCreates => bad(
            codes::NO_REMAINING_CREATES,
            format!(
                "There are no remaining creates for validation code '{}'.",
                validation_code.unwrap_or_default()
            ),
        ),
    }
}

/// What a create request asks for once it passed the contract checks: the qualification and
/// the validation code it carries.
type CreateRequest = Result<(Qualification, Option<String>), Response>;

/// Checks a create body and query against the 2021 and 2022 contracts.
fn validate_body(body: &[u8], query: Option<&str>, require_2022: bool) -> CreateRequest {
    let value: Value = serde_json::from_slice(body).or_else(|e| {
        bad(
            codes::MALFORMED_BODY,
            format!("The request body is not valid JSON: {e}."),
        )
    })?;
    let Value::Object(object) = value else {
        return bad(
            codes::MALFORMED_BODY,
            "The request body must be a JSON object.",
        );
    };
    let query = query.filter(|q| !q.is_empty());
    if object.contains_key("Qualification") {
        if require_2022 {
            return bad(
                codes::CONTRACT_RETIRED,
                "The {\"Qualification\": ...} request contract is no longer supported; send {\"qualification\": ..., \"educationSegment\": ...}.",
            );
        }
        validate_2021(&object, query)
    } else {
        validate_2022(&object, query)
    }
}

fn validate_2021(object: &Map<String, Value>, query: Option<&str>) -> CreateRequest {
    if let Some(key) = object.keys().find(|k| *k != "Qualification") {
        return bad(
            codes::UNEXPECTED_FIELD,
            format!(
                "Unexpected field '{key}': a body with 'Qualification' may contain nothing else."
            ),
        );
    }
    let qualification = qualification_value(object.get("Qualification"), "Qualification")?;
    if !qualification.requires(Field::ValidationCode, ApiContract::V2021) {
        if let Some(q) = query {
            return bad(
                codes::UNEXPECTED_QUERY,
                format!("Query parameters are not allowed for {qualification}: '{q}'."),
            );
        }
        return Ok((qualification, None));
    }
    let pairs = query.map(form_decode).unwrap_or_default();
    if let Some((key, _)) = pairs.iter().find(|(k, _)| k != "code") {
        return bad(
            codes::UNEXPECTED_QUERY,
            format!("Unexpected query parameter '{key}'."),
        );
    }
    let Some((_, code)) = pairs.into_iter().next() else {
        return bad(
            codes::INVALID_VALIDATION_CODE,
            format!(
                "The 'code' query parameter (validation code) is required for {qualification}."
            ),
        );
    };
    // A code is text (the service's list has codes that are not numbers); only empty is wrong.
    if code.trim().is_empty() {
        return bad(
            codes::INVALID_VALIDATION_CODE,
            format!("The validation code '{code}' is invalid: it is empty."),
        );
    }
    Ok((qualification, Some(code)))
}

fn validate_2022(object: &Map<String, Value>, query: Option<&str>) -> CreateRequest {
    if let Some(q) = query {
        return bad(
            codes::UNEXPECTED_QUERY,
            format!("Query parameters are not allowed on this request: '{q}'."),
        );
    }
    const KEYS: [&str; 4] = [
        "qualification",
        "educationSegment",
        "website",
        "validationCode",
    ];
    if let Some(key) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return bad(
            codes::UNEXPECTED_FIELD,
            format!("Unknown field '{key}'; expected qualification, educationSegment, website or validationCode."),
        );
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
            bad(
                code,
                format!("The field '{key}' is required for {qualification}{hint}."),
            )
        }
        Some(_) if !qualification.carries(field) => bad(
            code,
            format!("The field '{key}' is not allowed for {qualification}."),
        ),
        value => Ok(value),
    };
    // A text field: absent, or a string.
    let text = |key: &str, kind, code| -> Result<Option<String>, Response> {
        match field(key, kind, code)? {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(v) => bad(
                code,
                format!("The field '{key}' must be a string, got {v}."),
            ),
        }
    };

    if let Some(v) = field("educationSegment", Field::Segment, codes::INVALID_SEGMENT)? {
        let segments =
            [EducationSegment::K12, EducationSegment::HigherEducation].map(|s| s.as_str());
        if !v.as_str().is_some_and(|s| segments.contains(&s)) {
            return bad(
                codes::INVALID_SEGMENT,
                format!("The field 'educationSegment' has the invalid value {v}; expected K12 or HigherEducation."),
            );
        }
    }
    text("website", Field::Website, codes::INVALID_WEBSITE)?;
    let code = codes::INVALID_VALIDATION_CODE;
    let validation_code = text("validationCode", Field::ValidationCode, code)?;
    Ok((qualification, validation_code))
}

fn qualification_value(value: Option<&Value>, field: &str) -> Result<Qualification, Response> {
    let code = codes::INVALID_QUALIFICATION;
    let Some(value) = value else {
        return bad(code, format!("The field '{field}' is required."));
    };
    let Some(text) = value.as_str() else {
        return bad(
            code,
            format!("The field '{field}' must be a string, got {value}."),
        );
    };
    if let Some(q) = Qualification::named(text) {
        return Ok(q);
    }
    if NOT_SETTABLE.contains(&text) {
        return bad(
            code,
            format!("The qualification '{text}' cannot be set through this API."),
        );
    }
    bad(
        code,
        format!(
            "Unknown qualification '{text}'; expected {}.",
            listing(false)
        ),
    )
}
