//! The Partner Center wire formats: request paths and bodies for both create contracts, and
//! tolerant parsing of success, list and error answers.

use std::fmt::Write as _;
use std::sync::LazyLock;

use serde::Serialize;

use crate::domain::model::{ApiContract, CustomerId, Qualification, QualificationRecord, Row};
use crate::domain::qualification::Field;

/// Longest error text copied from a service answer into logs or the results file.
pub const MAX_ERROR_TEXT: usize = 300;

/// A request ready to go on the wire, minus headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: reqwest::Method,
    /// Path and query, appended to the base URL.
    pub path_and_query: String,
    /// JSON body for writes (shared, so a resend does not copy it).
    pub body: Option<bytes::Bytes>,
}

impl Request {
    /// A `GET` of `path_and_query`.
    pub fn get(path_and_query: String) -> Request {
        Request {
            method: reqwest::Method::GET,
            path_and_query,
            body: None,
        }
    }
}

/// The 2022 contract's body; `None` fields are left out, as the service expects.
#[derive(Serialize, Default)]
struct Body2022<'a> {
    qualification: &'a str,
    #[serde(rename = "educationSegment", skip_serializing_if = "Option::is_none")]
    education_segment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    website: Option<&'a str>,
    #[serde(rename = "validationCode", skip_serializing_if = "Option::is_none")]
    validation_code: Option<&'a str>,
}

/// The bodies that name only the qualification, serialised once and shared by every row: the
/// 2022 contract's (no optional field) and the 2021 contract's (its one key, capitalised).
fn bare_body(qualification: Qualification, contract: ApiContract) -> &'static bytes::Bytes {
    static BARE: LazyLock<[[bytes::Bytes; 2]; Qualification::COUNT]> = LazyLock::new(|| {
        Qualification::ALL.map(|q| {
            let v2022 = Body2022 {
                qualification: q.as_str(),
                ..Body2022::default()
            };
            let v2021 = serde_json::json!({ "Qualification": q.as_str() });
            [json(&v2022), json(&v2021)]
        })
    });
    &BARE[usize::from(qualification.index())][usize::from(contract == ApiContract::V2021)]
}

/// Serialising these bodies cannot fail; the fallback only keeps `?` out of the hot path.
fn json(body: &impl Serialize) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(body).unwrap_or_default())
}

/// `POST /v1/customers/{id}/qualifications` for one row under the chosen contract.
pub fn create_request(row: &Row, contract: ApiContract) -> Request {
    let mut path_and_query = qualifications_path(row.customer_id);
    let q = row.qualification;
    // Only the fields the qualification's row in the table carries.
    let segment = row.segment.filter(|_| q.carries(Field::Segment));
    let website = row.website.as_deref().filter(|_| q.carries(Field::Website));
    let code = row
        .validation_code
        .as_deref()
        .filter(|_| q.carries(Field::ValidationCode));
    let body = match contract {
        ApiContract::V2022 if segment.is_some() || website.is_some() || code.is_some() => {
            json(&Body2022 {
                qualification: q.as_str(),
                education_segment: segment.map(|s| s.as_str()),
                website,
                validation_code: code,
            })
        }
        _ => bare_body(q, contract).clone(),
    };
    if let Some(code) = code.filter(|_| contract == ApiContract::V2021) {
        // A code is text: encoded as a form value, as the service decodes the query.
        path_and_query.push_str("?code=");
        path_and_query.extend(url::form_urlencoded::byte_serialize(code.as_bytes()));
    }
    Request {
        method: reqwest::Method::POST,
        path_and_query,
        body: Some(body),
    }
}

/// `GET /v1/customers/{id}/qualifications`.
pub fn list_request(customer: CustomerId) -> Request {
    Request::get(qualifications_path(customer))
}

/// `GET /v1/customers/all/validations`.
pub fn validations_request() -> Request {
    Request::get("/v1/customers/all/validations".to_string())
}

fn qualifications_path(customer: CustomerId) -> String {
    // Room for a `?code=` query too, so the 2021 contract does not grow the string.
    let (mut path, id) = (String::with_capacity(80), customer.0.hyphenated());
    let _ = write!(path, "/v1/customers/{id}/qualifications");
    path
}

/// Reads the vetting fields of a create answer, when the answer holds the posted qualification.
///
/// The answer is usually the record itself, but the REST reference documents a wrapper too;
/// whatever [`parse_qualification_list`] finds, only the entry for `qualification` counts. An answer in no
/// known shape, or one naming only other qualifications, yields `None`: it does not prove that
/// this create landed (the caller confirms it from the customer's list).
pub fn parse_create_answer(
    body: &[u8],
    qualification: Qualification,
) -> Option<QualificationRecord> {
    let records = parse_qualification_list(body).ok()?;
    find_qualification(records, qualification)
}

/// An answer body in none of the shapes Partner Center documents for qualifications.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    /// The body is not JSON. The parser's reason stays in the text (a results cell shows
    /// this error's `Display` alone); the parser's error is kept as the cause as well.
    #[error("unexpected qualifications answer: not JSON ({source})")]
    NotJson {
        /// What the JSON parser found.
        #[source]
        source: serde_json::Error,
    },
    /// JSON, but in none of the documented shapes.
    #[error("unexpected qualifications answer: {0}")]
    Shape(String),
}

/// Every qualification record in a create answer or a qualifications list, whatever documented
/// shape it came in: a bare object, a bare array, `{"qualifications": [...]}` or `{"items": [...]}`
/// (a wrapper may also hold a single object). Keys are matched without regard to case
/// (`VettingStatus` = `vettingStatus`), and the date is read from `vettingCreateDate` or
/// `vettingCreatedDate`. Pure: the one place answer shapes are understood.
pub fn parse_qualification_list(body: &[u8]) -> Result<Vec<QualificationRecord>, ShapeError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|source| ShapeError::NotJson { source })?;
    match value {
        serde_json::Value::Array(items) => items_of(&items),
        serde_json::Value::Object(map) => {
            let wrapped = map.iter().find(|(key, _)| {
                key.eq_ignore_ascii_case("qualifications") || key.eq_ignore_ascii_case("items")
            });
            match wrapped {
                Some((_, serde_json::Value::Array(items))) => items_of(items),
                Some((_, serde_json::Value::Object(one))) => Ok(vec![record_of(one)?]),
                Some((key, _)) => Err(ShapeError::Shape(format!("`{key}` is not a list"))),
                None => Ok(vec![record_of(&map)?]),
            }
        }
        other => Err(ShapeError::Shape(format!(
            "expected an object or a list, got {}",
            json_kind(&other)
        ))),
    }
}

fn items_of(items: &[serde_json::Value]) -> Result<Vec<QualificationRecord>, ShapeError> {
    items
        .iter()
        .map(|item| match item {
            serde_json::Value::Object(map) => record_of(map),
            other => Err(ShapeError::Shape(format!(
                "a list entry is {}, not an object",
                json_kind(other)
            ))),
        })
        .collect()
}

/// One record from an object whose keys may be in any case; an object without a
/// `qualification` key is not a record.
fn record_of(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<QualificationRecord, ShapeError> {
    let text = |names: &[&str]| {
        map.iter()
            .find(|(key, _)| names.iter().any(|n| key.eq_ignore_ascii_case(n)))
            .and_then(|(_, value)| scalar(value))
    };
    let qualification = text(&["qualification"]).ok_or_else(|| {
        ShapeError::Shape("an object without a `qualification` field".to_string())
    })?;
    Ok(QualificationRecord {
        qualification,
        vetting_status: text(&["vettingStatus"]),
        vetting_reason: text(&["vettingReason"]),
        vetting_create_date: text(&["vettingCreateDate", "vettingCreatedDate"]),
    })
}

/// A string or a number (codes and ids arrive as either), as text.
fn scalar(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The entry for `qualification` in a customer's list, matched case-insensitively.
pub fn find_qualification(
    records: Vec<QualificationRecord>,
    qualification: Qualification,
) -> Option<QualificationRecord> {
    records
        .into_iter()
        .find(|r| Qualification::parse(&r.qualification).ok() == Some(qualification))
}

/// One of the partner's GovernmentCommunityCloud validation codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationCode {
    /// `validationId` (a string on the wire, documented as an integer: both are read).
    pub validation_id: String,
    /// `organizationName`.
    pub organization_name: String,
    /// `remainingCreates`, when the service states it.
    pub remaining_creates: Option<u64>,
}

/// Why a validation codes answer cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationsError {
    #[error("validation codes answer is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// The body is neither a list nor `{"items": [...]}`.
    #[error("validation codes answer is not a list")]
    NotAList,
    #[error("a validation code entry has no validationId")]
    NoId,
}

/// Parses `GET /v1/customers/all/validations`.
pub fn parse_validations(body: &[u8]) -> Result<Vec<ValidationCode>, ValidationsError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(ValidationsError::NotJson)?;
    // A bare list, or the list in `items` (`get` finds no key in a list).
    let serde_json::Value::Array(items) = value.get("items").unwrap_or(&value) else {
        return Err(ValidationsError::NotAList);
    };
    items
        .iter()
        .map(|item| {
            let text = |key| item.get(key).and_then(scalar).map(|s| s.trim().to_string());
            let id = text("validationId")
                .filter(|id| !id.is_empty())
                .ok_or(ValidationsError::NoId)?;
            Ok(ValidationCode {
                validation_id: id,
                organization_name: text("organizationName").unwrap_or_default(),
                remaining_creates: item.get("remainingCreates").and_then(|v| v.as_u64()),
            })
        })
        .collect()
}

/// The code and message of an error answer, whatever shape its body took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceError {
    /// `code` (a number or a string on the wire), or `error` for token answers.
    pub code: Option<String>,
    /// `description`, `message`, `error_description`, or the body itself when it is text.
    pub message: Option<String>,
}

/// Reads an error body: the usual object, a throttling object, a bare JSON string, empty, or not JSON.
pub fn parse_error_body(body: &[u8]) -> ServiceError {
    let text_only = |text: &str| ServiceError {
        code: None,
        message: Some(sanitize(text)).filter(|t| !t.is_empty()),
    };
    let Ok(value) = serde_json::from_slice(body) else {
        return text_only(&String::from_utf8_lossy(body));
    };
    match value {
        serde_json::Value::Object(map) => {
            // The first of `keys` present, as text.
            let first = |keys: [&str; 3]| {
                let text = keys
                    .into_iter()
                    .find_map(|key| map.get(key).and_then(scalar));
                text.map(sanitize_owned).filter(|t| !t.is_empty())
            };
            ServiceError {
                code: first(["code", "error", "statusCode"]),
                message: first(["description", "message", "error_description"]),
            }
        }
        serde_json::Value::String(text) => text_only(&text),
        serde_json::Value::Null => ServiceError::default(),
        // A number, a boolean or a list: its JSON text, never empty.
        other => text_only(&other.to_string()),
    }
}

/// Makes service text safe for one CSV cell or log line: control characters become spaces,
/// runs of white space fold, and the length is capped.
pub fn sanitize(text: &str) -> String {
    sanitize_owned(text.to_owned())
}

/// [`sanitize`] for a string already owned: a clean one (the usual vetting answer) is kept as is.
pub fn sanitize_owned(text: String) -> String {
    if is_clean(&text) {
        return text;
    }
    let mut out = String::with_capacity(text.len().min(MAX_ERROR_TEXT + 3));
    let mut kept = 0;
    for mut c in text.chars() {
        if c.is_control() || c.is_whitespace() {
            c = ' ';
        }
        // No space at the start, nor two in a row.
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if kept >= MAX_ERROR_TEXT {
            out.push('…');
            break;
        }
        kept += 1;
        out.push(c);
    }
    out.trim_end().to_string()
}

/// Whether [`sanitize`] would return `text` unchanged: short printable ASCII with single,
/// interior spaces. Anything else takes the full path.
fn is_clean(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() <= MAX_ERROR_TEXT
        && bytes.first() != Some(&b' ')
        && bytes.last() != Some(&b' ')
        && bytes.iter().all(|b| (0x20..0x7f).contains(b))
        && !text.contains("  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_json_keeps_the_parsers_error() {
        use std::error::Error as _;
        let err = parse_qualification_list(b"not json").expect_err("not JSON");
        assert!(matches!(err, ShapeError::NotJson { .. }), "{err:?}");
        assert!(err.source().is_some());
        let parser = serde_json::from_slice::<serde_json::Value>(b"not json").expect_err("x");
        // A results cell shows `Display` alone, so the parser's reason stays in it, once.
        assert_eq!(
            err.to_string(),
            format!("unexpected qualifications answer: not JSON ({parser})")
        );
        assert_eq!(crate::domain::error::chain(&err), err.to_string());
    }
    use crate::domain::model::EducationSegment;

    fn row(q: Qualification) -> Row {
        Row {
            index: 1,
            customer_id: CustomerId::parse("0E1F2A3B-4C5D-6E7F-8091-A2B3C4D5E6F7").expect("id"),
            qualification: q,
            validation_code: Some("123456".into()),
            segment: Some(EducationSegment::K12),
            website: Some("school.example.edu".into()),
        }
    }

    fn body(req: &Request) -> serde_json::Value {
        serde_json::from_slice(req.body.as_deref().unwrap_or_default()).expect("json body")
    }

    #[test]
    fn contract_2022_sends_only_the_fields_of_its_qualification() {
        let req = create_request(&row(Qualification::Education), ApiContract::V2022);
        assert_eq!(
            req.path_and_query,
            "/v1/customers/0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7/qualifications"
        );
        assert_eq!(
            body(&req),
            serde_json::json!({"qualification":"Education","educationSegment":"K12","website":"school.example.edu"})
        );
        let req = create_request(
            &row(Qualification::GovernmentCommunityCloud),
            ApiContract::V2022,
        );
        assert!(!req.path_and_query.contains('?'));
        assert_eq!(
            body(&req),
            serde_json::json!({"qualification":"GovernmentCommunityCloud","validationCode":"123456"})
        );
        let req = create_request(&row(Qualification::StateOwnedEntity), ApiContract::V2022);
        assert_eq!(
            body(&req),
            serde_json::json!({"qualification":"StateOwnedEntity"})
        );
    }

    #[test]
    fn contract_2021_sends_one_key_and_the_code_in_the_query() {
        let req = create_request(
            &row(Qualification::GovernmentCommunityCloud),
            ApiContract::V2021,
        );
        assert!(req.path_and_query.ends_with("/qualifications?code=123456"));
        assert_eq!(
            req.body.as_deref(),
            Some(&br#"{"Qualification":"GovernmentCommunityCloud"}"#[..])
        );
        let req = create_request(&row(Qualification::Education), ApiContract::V2021);
        assert!(!req.path_and_query.contains('?'));
        assert_eq!(
            req.body.as_deref(),
            Some(&br#"{"Qualification":"Education"}"#[..])
        );
    }

    #[test]
    fn error_bodies_of_every_shape_are_read() {
        let e = parse_error_body(
            br#"{"code": 20002, "description": "No relationship between caller and account.", "data": [], "source": "PartnerFD"}"#,
        );
        assert_eq!(e.code.as_deref(), Some("20002"));
        assert_eq!(
            e.message.as_deref(),
            Some("No relationship between caller and account.")
        );
        let e = parse_error_body(br#"{"code":"600039","description":"bad"}"#);
        assert_eq!(e.code.as_deref(), Some("600039"));
        let e = parse_error_body(
            br#"{"statusCode":429,"message":"Rate limit is exceeded. Try again in 57 seconds."}"#,
        );
        assert_eq!(e.code.as_deref(), Some("429"));
        assert!(e.message.unwrap_or_default().starts_with("Rate limit"));
        let e = parse_error_body(br#""Customer tagging denied.""#);
        assert_eq!(
            (e.code, e.message.as_deref()),
            (None, Some("Customer tagging denied."))
        );
        assert_eq!(parse_error_body(b""), ServiceError::default());
        let e = parse_error_body(b"<html>\r\n<b>Bad\x07 Gateway</b></html>");
        assert_eq!(
            e.message.as_deref(),
            Some("<html> <b>Bad Gateway</b></html>")
        );
    }

    #[test]
    fn validation_codes_are_read_with_string_or_number_ids() {
        let codes = parse_validations(
            br#"[{"partnerId":"p","organizationName":"Org A","validationId":"12345","maxCreates":10,"remainingCreates":3,"eTag":"x"},
                 {"organizationName":"Org B","validationId":678,"maxCreates":null,"remainingCreates":null}]"#,
        )
        .expect("codes");
        assert_eq!(codes[0].validation_id, "12345");
        assert_eq!(codes[0].remaining_creates, Some(3));
        assert_eq!(codes[1].validation_id, "678");
        assert_eq!(codes[1].remaining_creates, None);
        assert!(parse_validations(b"[{}]").is_err());
    }

    #[test]
    fn long_service_text_is_cut() {
        let long = "x".repeat(5000);
        let cut = sanitize(&long);
        assert!(cut.chars().count() <= MAX_ERROR_TEXT + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn clean_text_is_kept_and_anything_else_takes_the_full_path() {
        // The shortcut must agree with the character-by-character path on every kind of input.
        for text in [
            "Approved",
            "Not an Academic Domain",
            "2024-01-01T00:00:00Z",
            "",
            " leading",
            "trailing ",
            "two  spaces",
            "tab\there",
            "new\nline",
            "caf\u{e9} \u{a0}nbsp",
            "del\u{7f}",
        ] {
            let expected: String = {
                // The full path, spelled out: control and white space fold to single spaces.
                let mut out = String::new();
                for c in text.chars() {
                    let c = if c.is_control() || c.is_whitespace() {
                        ' '
                    } else {
                        c
                    };
                    if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
                        continue;
                    }
                    out.push(c);
                }
                out.trim_end().to_string()
            };
            assert_eq!(sanitize(text), expected, "{text:?}");
            assert_eq!(sanitize_owned(text.to_string()), expected, "{text:?}");
        }
        assert!(sanitize_owned("x".repeat(MAX_ERROR_TEXT + 1)).ends_with('…'));
    }

    #[test]
    fn bare_2022_bodies_match_the_serialised_form() {
        for q in Qualification::ALL {
            let serialised = serde_json::to_vec(&Body2022 {
                qualification: q.as_str(),
                education_segment: None,
                website: None,
                validation_code: None,
            })
            .expect("serialise");
            assert_eq!(
                bare_body(q, ApiContract::V2022),
                serialised.as_slice(),
                "{q}"
            );
        }
    }

    #[test]
    fn lists_are_read_tolerantly() {
        let list = parse_qualification_list(
            br#"[{"qualification":"education","vettingStatus":"Denied","vettingReason":"Not an Academic Domain","vettingCreatedDate":"2024-01-01T00:00:00Z"},{"qualification":"StateOwnedEntity"}]"#,
        )
        .expect("list");
        let edu = find_qualification(list.clone(), Qualification::Education).expect("edu");
        assert_eq!(edu.vetting_status.as_deref(), Some("Denied"));
        assert_eq!(
            edu.vetting_create_date.as_deref(),
            Some("2024-01-01T00:00:00Z")
        );
        assert!(find_qualification(list, Qualification::GovernmentCommunityCloud).is_none());
        assert!(parse_qualification_list(b"{}").is_err());
    }

    #[test]
    fn every_documented_answer_shape_is_read() {
        let expected = QualificationRecord {
            qualification: "Education".into(),
            vetting_status: Some("InReview".into()),
            vetting_reason: Some("Pending".into()),
            vetting_create_date: Some("2020-12-04T20:54:24Z".into()),
        };
        let one = r#"{"qualification":"Education","vettingStatus":"InReview","vettingReason":"Pending","vettingCreateDate":"2020-12-04T20:54:24Z"}"#;
        let pascal = r#"{"Qualification":"Education","VettingStatus":"InReview","VETTINGREASON":"Pending","VettingCreatedDate":"2020-12-04T20:54:24Z"}"#;
        for entry in [one, pascal] {
            for body in [
                entry.to_string(),
                format!("[{entry}]"),
                format!(r#"{{"qualifications":[{entry}]}}"#),
                format!(r#"{{"Qualifications":[{entry}]}}"#),
                format!(r#"{{"items":[{entry}]}}"#),
                format!(r#"{{"Items":[{entry}],"totalCount":1}}"#),
                format!(r#"{{"qualifications":{entry}}}"#),
            ] {
                let records = parse_qualification_list(body.as_bytes()).expect(&body);
                assert_eq!(records, vec![expected.clone()], "{body}");
                let vetting =
                    parse_create_answer(body.as_bytes(), Qualification::Education).expect(&body);
                assert_eq!(
                    vetting.vetting_status.as_deref(),
                    Some("InReview"),
                    "{body}"
                );
                assert_eq!(
                    vetting.vetting_create_date.as_deref(),
                    Some("2020-12-04T20:54:24Z"),
                    "{body}"
                );
            }
        }
        // The entry for the posted qualification wins over the first one.
        let two = br#"{"qualifications":[{"qualification":"StateOwnedEntity"},{"Qualification":"GovernmentCommunityCloud","VettingStatus":"Approved"}]}"#;
        assert_eq!(
            parse_create_answer(two, Qualification::GovernmentCommunityCloud)
                .and_then(|v| v.vetting_status)
                .as_deref(),
            Some("Approved")
        );
        // An answer naming only another qualification is not this create's answer.
        assert_eq!(parse_create_answer(two, Qualification::Education), None);
        assert_eq!(
            parse_create_answer(
                br#"{"qualification":"StateOwnedEntity","vettingStatus":"Approved"}"#,
                Qualification::Education
            ),
            None
        );
        assert_eq!(parse_qualification_list(b"[]").expect("empty list"), vec![]);
        assert_eq!(
            parse_qualification_list(br#"{"qualifications":[]}"#).expect("empty"),
            vec![]
        );
        for bad in [
            &b"{}"[..],
            b"\"Education\"",
            b"null",
            b"[1]",
            b"{\"items\":5}",
            b"not json",
        ] {
            assert!(
                parse_qualification_list(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert_eq!(parse_create_answer(bad, Qualification::Education), None);
        }
    }
}
