//! The shapes Partner Center's qualification answers are documented in. The simulator can serve
//! each, so that the client is tested against all of them rather than the one it was written for.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::domain::model::QualificationRecord;

/// Which documented shape the create answer and the qualifications list take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AnswerShape {
    /// The SDK's: `201` with the record itself; the list as a bare array.
    #[default]
    Bare,
    /// The REST reference's: `200` with `{"qualifications": [record]}`; the list as
    /// `{"qualifications": [...]}`.
    Qualifications,
    /// Partner Center's collection shape with PascalCase keys and `VettingCreatedDate`:
    /// `201` with the record; the list as `{"totalCount": n, "items": [...], "attributes": ...}`.
    PascalItems,
}

/// An `--answer-shape` value that names no shape; holds the value trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown answer shape {0:?}; expected bare, qualifications or pascal-items")]
pub struct UnknownAnswerShape(pub String);

impl std::str::FromStr for AnswerShape {
    type Err = UnknownAnswerShape;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "bare" => Ok(AnswerShape::Bare),
            "qualifications" => Ok(AnswerShape::Qualifications),
            "pascal-items" | "items" => Ok(AnswerShape::PascalItems),
            other => Err(UnknownAnswerShape(other.to_string())),
        }
    }
}

fn pascal(record: &QualificationRecord) -> Value {
    let mut value = json!({
        "Qualification": record.qualification,
        "VettingStatus": record.vetting_status,
        "VettingReason": record.vetting_reason,
        "VettingCreatedDate": record.vetting_create_date,
    });
    // The fields a record lacks are left out, not null.
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    value
}

/// The answer to a successful create.
pub(crate) fn created(shape: AnswerShape, record: QualificationRecord) -> Response {
    match shape {
        AnswerShape::Bare => (StatusCode::CREATED, Json(record)).into_response(),
        AnswerShape::Qualifications => {
            (StatusCode::OK, Json(json!({ "qualifications": [record] }))).into_response()
        }
        AnswerShape::PascalItems => (StatusCode::CREATED, Json(pascal(&record))).into_response(),
    }
}

/// The answer to a qualifications read.
pub(crate) fn list(shape: AnswerShape, records: Vec<QualificationRecord>) -> Response {
    match shape {
        AnswerShape::Bare => Json(records).into_response(),
        AnswerShape::Qualifications => Json(json!({ "qualifications": records })).into_response(),
        AnswerShape::PascalItems => {
            let items: Vec<Value> = records.iter().map(pascal).collect();
            let body = json!({
                "totalCount": items.len(),
                "items": items,
                "attributes": { "objectType": "Collection" },
            });
            Json(body).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_names_parse_and_an_unknown_one_is_named() {
        assert_eq!(" Bare ".parse(), Ok(AnswerShape::Bare));
        assert_eq!("qualifications".parse(), Ok(AnswerShape::Qualifications));
        assert_eq!("items".parse(), Ok(AnswerShape::PascalItems));
        assert_eq!("PASCAL-ITEMS".parse(), Ok(AnswerShape::PascalItems));
        let err = " Envelope "
            .parse::<AnswerShape>()
            .expect_err("not a shape");
        assert_eq!(err, UnknownAnswerShape("envelope".into()));
        assert_eq!(
            err.to_string(),
            r#"unknown answer shape "envelope"; expected bare, qualifications or pascal-items"#
        );
    }
}
