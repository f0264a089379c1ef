//! One record's checks: the cells a qualification needs under the contract, and the results
//! row of a record that is not sent.

use std::borrow::Cow;

use csv::ByteRecord;

use crate::domain::model::{CustomerId, EducationSegment, Outcome, Qualification, ResultRow, Row};
use crate::domain::qualification::Field;

use super::*;

/// Why a record is not sent.
pub(super) struct Rejection {
    pub(super) outcome: Outcome,
    pub(super) code: &'static str,
    pub(super) message: String,
}

impl Rejection {
    pub(super) fn invalid(code: &'static str, message: String) -> Self {
        Rejection {
            outcome: Outcome::Invalid,
            code,
            message,
        }
    }
}

pub(super) fn rejected(
    row: u64,
    customer_id: String,
    qualification: String,
    why: Rejection,
) -> ResultRow {
    ResultRow {
        row,
        customer_id,
        qualification,
        outcome: Some(why.outcome),
        attempts: 0,
        error_code: Some(why.code.to_owned()),
        error_message: Some(why.message),
        ..ResultRow::default()
    }
}

/// A value shown inside a one-line message: long values [`cut`], control characters escaped.
pub(super) fn shown(value: &str) -> String {
    let mut out = String::new();
    for c in cut(value).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A value cut to 80 characters (an ellipsis marks the cut).
pub(super) fn cut(value: &str) -> String {
    match value.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &value[..at]),
        None => value.to_string(),
    }
}

/// A message folded onto one line.
pub(super) fn one_line(message: &str) -> String {
    message.lines().collect::<Vec<_>>().join(" ")
}

/// Checks the fields in the order customer_id, qualification, segment, code; the first bad one
/// decides the message.
pub(super) fn validate(
    record: &ByteRecord,
    columns: &Columns,
    opts: &InputOptions,
    index: u64,
) -> Result<Row, Rejection> {
    let missing = |column: usize| {
        let len = record.len();
        Rejection::invalid(
            MISSING_FIELD,
            format!(
                "{}: missing; the row has {len} {}, the header has {}",
                COLUMNS[column].0,
                if len == 1 { "field" } else { "fields" },
                columns.header_len
            ),
        )
    };
    let cell = |column| columns.cell(record, column).ok_or_else(|| missing(column));

    let raw_id = cell(CUSTOMER_ID)?;
    let Some(customer_id) = CustomerId::parse(&raw_id) else {
        let raw = match &*raw_id {
            "" => "(empty)".into(),
            raw => shown(raw),
        };
        let message = format!("customer_id: not a GUID: {raw}");
        return Err(Rejection::invalid(INVALID_CUSTOMER_ID, message));
    };

    let qualification = Qualification::parse(&cell(QUALIFICATION)?)
        .map_err(|e| Rejection::invalid(INVALID_QUALIFICATION, format!("qualification: {e}")))?;

    // An unknown segment is invalid on any row and under either contract.
    let segment_cell = columns.optional(record, EDUCATION_SEGMENT);
    let row_segment = match EducationSegment::parse(&segment_cell) {
        _ if segment_cell.is_empty() => None,
        Some(segment) => Some(segment),
        None => {
            let message = format!(
                "education_segment: unknown education segment \"{}\"; expected K12 or HigherEducation",
                shown(&segment_cell)
            );
            return Err(Rejection::invalid(INVALID_EDUCATION_SEGMENT, message));
        }
    };
    // The fields the qualification's row in the table carries, required as it says.
    let required = |field| qualification.requires(field, opts.contract);
    let segment = row_segment.or(opts.default_segment);
    let segment = segment.filter(|_| qualification.carries(Field::Segment));
    if segment.is_none() && required(Field::Segment) {
        return Err(Rejection::invalid(
            MISSING_EDUCATION_SEGMENT,
            format!("education_segment: required for {qualification} under the {} API contract (set the column or --education-segment)", opts.contract),
        ));
    }

    // Text, as Partner Center lists it (its codes are not all digits); trimmed, non-empty.
    let code_cell = || Some(columns.optional(record, VALIDATION_CODE)).filter(|c| !c.is_empty());
    let default_code = opts.default_validation_code.as_deref().map(str::trim);
    let validation_code = if !qualification.carries(Field::ValidationCode) {
        None
    } else if let Some(cell) = code_cell() {
        Some(cell.into_owned())
    } else {
        default_code
            .filter(|code| !code.is_empty())
            .map(str::to_owned)
    };
    if validation_code.is_none() && required(Field::ValidationCode) {
        return Err(Rejection::invalid(
            MISSING_VALIDATION_CODE,
            format!("validation_code: required for {qualification} (set the column or --validation-code)"),
        ));
    }

    let website = Some(columns.optional(record, WEBSITE))
        .filter(|w| qualification.carries(Field::Website) && !w.is_empty())
        .map(Cow::into_owned);

    Ok(Row {
        index,
        customer_id,
        qualification,
        validation_code,
        segment,
        website,
    })
}
