//! The header row: the known columns, their aliases, where each sits in a record, and what a
//! header lacking one is told.

use std::borrow::Cow;

use csv::ByteRecord;

use crate::domain::model::{folded, SHORT_KEY};
use crate::input::source::{delimiter_name, Format};

use super::*;

pub(super) fn also_accepted(aliases: &[&str]) -> String {
    if aliases.is_empty() {
        String::new()
    } else {
        format!(" (also accepted: {})", aliases.join(", "))
    }
}

pub(super) const CUSTOMER_ID: usize = 0;
pub(super) const QUALIFICATION: usize = 1;
pub(super) const VALIDATION_CODE: usize = 2;
pub(super) const EDUCATION_SEGMENT: usize = 3;
pub(super) const WEBSITE: usize = 4;

/// Each known column's canonical name and aliases. Header cells are matched after folding as
/// cells are ([`folded`]), so `CustomerID`, `Customer Id` and `customer-id` are all
/// `customer_id`; spreadsheet exports name the columns in many ways (docs/input-formats.md).
pub(super) const COLUMNS: [(&str, &[&str]); 5] = [
    (
        "customer_id",
        &["customer_tenant_id", "tenant_id", "microsoft_id"],
    ),
    ("qualification", &["qualification_type"]),
    ("validation_code", &["code"]),
    ("education_segment", &["segment"]),
    ("website", &["domain"]),
];

impl Format {
    /// What the header error says about the cells and what to try.
    pub(super) fn describe_header(&self, header: &ByteRecord, row: u64) -> String {
        const MAX_CELLS: usize = 12;
        // Debug quoting escapes tabs and quotes once, so the split is plain to see.
        let mut cells: Vec<String> = header
            .iter()
            .take(MAX_CELLS)
            .map(String::from_utf8_lossy)
            .map(|c| format!("{:?}", cut(c.trim_start_matches('\u{feff}').trim())))
            .collect();
        if header.len() > MAX_CELLS {
            cells.push(format!("… ({} more)", header.len() - MAX_CELLS));
        }
        let n = header.len();
        let listed = format!(
            "{n} {}: [{}]",
            if n == 1 { "cell" } else { "cells" },
            cells.join(", ")
        );
        match self {
            Format::Csv {
                delimiter,
                detected,
                ..
            } => format!(
                "the header row, split on {}{}, has {listed}; if the file uses another separator, say which with --delimiter (comma, semicolon, tab or pipe)",
                delimiter_name(*delimiter),
                if *detected { " (detected)" } else { " (from --delimiter)" },
            ),
            Format::Workbook { sheet, .. } => format!(
                "the header (row {row} of sheet {sheet:?}) has {listed}; choose another sheet with --sheet NAME"
            ),
        }
    }
}

/// Where each known column sits in a record.
#[derive(Debug, Clone)]
pub(super) struct Columns {
    pub(super) position: [Option<usize>; COLUMNS.len()],
    pub(super) header_len: usize,
}

impl Columns {
    pub(super) fn from_header(
        header: &ByteRecord,
        format: &Format,
        row: u64,
    ) -> Result<Self, InputError> {
        let mut position = [None; COLUMNS.len()];
        // A cell longer than any name, or not ASCII, folds to a key that matches nothing.
        let fold = |text: &str| folded(text, &mut [0; SHORT_KEY]).to_owned();
        let keys: Vec<String> = header
            .iter()
            .map(|cell| fold(String::from_utf8_lossy(cell).trim_start_matches('\u{feff}')))
            .collect();
        // An `export` file names the customer tenant's domain (`companyProfile.domain`, often
        // `x.onmicrosoft.com`), not the school's website: fed back into `run`, it must not be
        // posted as one. Its `company_name`/`vetting_status` columns give it away.
        let export_like = keys
            .iter()
            .any(|k| *k == fold("company_name") || *k == fold("vetting_status"));
        for (i, key) in keys.iter().enumerate() {
            let key = key.as_str();
            if key.is_empty() {
                continue;
            }
            if export_like && key == fold("domain") {
                tracing::debug!(
                    column = i + 1,
                    "the header looks like a pc-qualify export: its domain column is the tenant's domain, not a website, and is ignored"
                );
                continue;
            }
            let found = COLUMNS.iter().position(|(name, aliases)| {
                fold(name) == key || aliases.iter().any(|a| fold(a) == key)
            });
            if let Some(column) = found {
                position[column].get_or_insert(i);
            }
        }
        for required in [CUSTOMER_ID, QUALIFICATION] {
            if position[required].is_none() {
                let (column, aliases) = COLUMNS[required];
                return Err(InputError::MissingColumn {
                    column,
                    aliases,
                    header: format.describe_header(header, row),
                });
            }
        }
        Ok(Columns {
            position,
            header_len: header.len(),
        })
    }

    /// The trimmed cell of `column`: `None` when the record is too short to reach it,
    /// `Some("")` when the header has no such column.
    pub(super) fn cell<'a>(&self, record: &'a ByteRecord, column: usize) -> Option<Cow<'a, str>> {
        match self.position[column] {
            None => Some(Cow::Borrowed("")),
            Some(i) => record.get(i).map(decode),
        }
    }

    /// The trimmed cell of an optional column, empty when absent either way.
    pub(super) fn optional<'a>(&self, record: &'a ByteRecord, column: usize) -> Cow<'a, str> {
        self.cell(record, column).unwrap_or(Cow::Borrowed(""))
    }
}
