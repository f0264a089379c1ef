//! The results file's columns: one table, [`COLUMNS`], says each column's name, where it sits in
//! the written file, and how its cell is written from and read into a [`ResultRow`]. The writer
//! writes the table in order; the reader finds each column by its header name, so a file that a
//! spreadsheet re-saved (another separator, a byte-order mark, CRLF, moved or added columns) still
//! reads.

use crate::domain::model::{Outcome, ResultRow};
use crate::results::output::{push_text, CsvRow, ResultsRowError};

/// The export's header, in its exact column order.
pub const EXPORT_COLUMNS: [&str; 7] = [
    "customer_id",
    "company_name",
    "domain",
    "qualification",
    "vetting_status",
    "vetting_reason",
    "vetting_create_date",
];

/// One column of the results file.
pub(crate) struct Column {
    /// The header name, exactly as written.
    pub name: &'static str,
    /// Pushes this column's cell for `row`.
    pub write: fn(&ResultRow, &mut csv::ByteRecord),
    /// Sets `row`'s field from the cell (already freed of the spreadsheet apostrophe).
    pub read: fn(&mut ResultRow, String) -> Result<(), ResultsRowError>,
}

/// The first four of [`COLUMNS`] are required: a file without one is refused. They (`row`,
/// `customer_id`, `qualification`, `outcome`) say which input row a line is and what became of
/// it: `--resume` needs all four to know what not to send again (and to check the rows against
/// the input), `refresh` to know which customers to read and which rows to copy unchanged, and
/// `report` to count outcomes and list the failed rows by row, customer and qualification. One
/// set for every reader keeps a file that one command accepts acceptable to the others. Every
/// other column is read when present and is empty (0 for `attempts` and `elapsed_ms`) when absent.
const REQUIRED: usize = 4;

/// A text column whose field is `None` when the cell is empty; named as the field.
macro_rules! optional_text {
    ($field:ident) => {
        Column {
            name: stringify!($field),
            write: |r, rec| push_text(rec, r.$field.as_deref().unwrap_or("")),
            read: |r, c| set(&mut r.$field, non_empty(c)),
        }
    };
}

/// The results file's columns, in the written order (the documented contract: do not reorder).
pub(crate) const COLUMNS: [Column; 14] = [
    Column {
        name: "row",
        write: |r, rec| push_number(rec, Some(r.row)),
        read: |r, c| match number(c, "row")?.ok_or(ResultsRowError::EmptyRow)? {
            // Rows count from 1: a 0 is no input's row (`--resume` would call it missing).
            0 => Err(ResultsRowError::OutOfRange {
                field: "row",
                value: 0,
            }),
            row => set(&mut r.row, row),
        },
    },
    Column {
        name: "customer_id",
        write: |r, rec| push_text(rec, &r.customer_id),
        read: |r, c| set(&mut r.customer_id, c),
    },
    Column {
        name: "qualification",
        write: |r, rec| push_text(rec, &r.qualification),
        read: |r, c| set(&mut r.qualification, c),
    },
    Column {
        name: "outcome",
        write: |r, rec| push_text(rec, r.outcome.map_or("", |o| o.as_str())),
        read: |r, c| set(&mut r.outcome, Some(outcome(c)?)),
    },
    Column {
        name: "http_status",
        write: |r, rec| push_number(rec, r.http_status.map(u64::from)),
        read: |r, c| set(&mut r.http_status, number(c, "http_status")?),
    },
    optional_text!(vetting_status),
    optional_text!(vetting_reason),
    optional_text!(vetting_create_date),
    Column {
        name: "attempts",
        write: |r, rec| push_number(rec, Some(u64::from(r.attempts))),
        read: |r, c| set(&mut r.attempts, number(c, "attempts")?.unwrap_or(0)),
    },
    Column {
        name: "correlation_id",
        write: |r, rec| push_uuid(rec, r.correlation_id),
        read: |r, c| set(&mut r.correlation_id, uuid(c, "correlation_id")?),
    },
    Column {
        name: "request_id",
        write: |r, rec| push_uuid(rec, r.request_id),
        read: |r, c| set(&mut r.request_id, uuid(c, "request_id")?),
    },
    optional_text!(error_code),
    optional_text!(error_message),
    Column {
        name: "elapsed_ms",
        write: |r, rec| push_number(rec, Some(r.elapsed_ms)),
        read: |r, c| set(&mut r.elapsed_ms, number(c, "elapsed_ms")?.unwrap_or(0)),
    },
];

impl CsvRow for ResultRow {
    fn header() -> impl Iterator<Item = &'static str> {
        COLUMNS.iter().map(|c| c.name)
    }
    fn push_cells(&self, record: &mut csv::ByteRecord) {
        for column in &COLUMNS {
            (column.write)(self, record);
        }
    }
}

/// Where each of [`COLUMNS`] sits in one file's records, found from its header by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The field index of each column of [`COLUMNS`], `None` when the file lacks it.
    at: [Option<usize>; COLUMNS.len()],
    /// Fields per record (the header's, unknown columns included).
    width: usize,
}

/// Why a header is not a results header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// A required column is absent.
    Missing(&'static str),
    /// A column is named twice, so which cell holds it is unclear.
    Twice(&'static str),
}

impl Layout {
    /// Maps `header` by name: names are matched exactly once trimmed of spaces (a byte-order mark
    /// is removed before the header reaches here); unknown columns are ignored.
    pub(crate) fn from_header(header: &csv::ByteRecord) -> Result<Layout, HeaderError> {
        let mut at = [None; COLUMNS.len()];
        for (i, name) in header.iter().enumerate() {
            let name = name.trim_ascii();
            if let Some(c) = COLUMNS.iter().position(|c| c.name.as_bytes() == name) {
                if at[c].replace(i).is_some() {
                    return Err(HeaderError::Twice(COLUMNS[c].name));
                }
            }
        }
        if let Some(c) = (0..REQUIRED).find(|&c| at[c].is_none()) {
            return Err(HeaderError::Missing(COLUMNS[c].name));
        }
        Ok(Layout {
            at,
            width: header.len(),
        })
    }

    /// Turns one record back into a [`ResultRow`], undoing the spreadsheet apostrophe.
    pub(crate) fn read(&self, record: &csv::ByteRecord) -> Result<ResultRow, ResultsRowError> {
        if record.len() != self.width {
            return Err(ResultsRowError::FieldCount {
                found: record.len(),
                expected: self.width,
            });
        }
        let mut row = ResultRow::default();
        for (column, at) in COLUMNS.iter().zip(self.at) {
            if let Some(i) = at {
                (column.read)(&mut row, undefuse(&record[i]))?;
            }
        }
        Ok(row)
    }
}

/// The cell as text, without the apostrophe [`push_text`] put before a cell a spreadsheet would
/// evaluate.
pub(crate) fn undefuse(cell: &[u8]) -> String {
    let cell = String::from_utf8_lossy(cell);
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest.to_string(),
        _ => cell.into_owned(),
    }
}

/// Stores a cell's value (keeps each entry of [`COLUMNS`] to one line per direction).
fn set<T>(field: &mut T, value: T) -> Result<(), ResultsRowError> {
    *field = value;
    Ok(())
}

fn outcome(cell: String) -> Result<Outcome, ResultsRowError> {
    Outcome::parse(&cell).ok_or(ResultsRowError::UnknownOutcome { value: cell })
}

fn non_empty(cell: String) -> Option<String> {
    Some(cell).filter(|t| !t.is_empty())
}

/// A number cell (spaces around it allowed) in its field's type: `None` when empty, an error
/// naming the field when it is not a number or does not fit.
fn number<T: TryFrom<u64>>(
    cell: String,
    field: &'static str,
) -> Result<Option<T>, ResultsRowError> {
    let text = cell.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value = text
        .parse::<u64>()
        .map_err(|_| ResultsRowError::NotANumber {
            field,
            value: cell.clone(),
        })?;
    T::try_from(value)
        .map(Some)
        .map_err(|_| ResultsRowError::OutOfRange { field, value })
}

fn uuid(cell: String, field: &'static str) -> Result<Option<uuid::Uuid>, ResultsRowError> {
    match cell.trim() {
        "" => Ok(None),
        text => uuid::Uuid::parse_str(text)
            .map(Some)
            .map_err(|_| ResultsRowError::NotAUuid { field, value: cell }),
    }
}

fn push_number(record: &mut csv::ByteRecord, value: Option<u64>) {
    match value {
        Some(v) => record.push_field(itoa::Buffer::new().format(v).as_bytes()),
        None => record.push_field(b""),
    }
}

fn push_uuid(record: &mut csv::ByteRecord, id: Option<uuid::Uuid>) {
    match id {
        Some(id) => {
            let mut buf = uuid::Uuid::encode_buffer();
            record.push_field(id.hyphenated().encode_lower(&mut buf).as_bytes());
        }
        None => record.push_field(b""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> csv::ByteRecord {
        csv::ByteRecord::from(names.to_vec())
    }

    #[test]
    fn the_written_header_maps_each_column_to_its_own_place() {
        let standard: Vec<&str> = ResultRow::header().collect();
        let layout = Layout::from_header(&header(&standard)).expect("standard header");
        let expected: Vec<Option<usize>> = (0..COLUMNS.len()).map(Some).collect();
        assert_eq!(layout.at.to_vec(), expected);
        assert_eq!(layout.width, 14);
    }

    #[test]
    fn columns_are_found_by_name_wherever_they_are_and_extra_ones_are_ignored() {
        let layout = Layout::from_header(&header(&[
            " notes ",
            "outcome",
            "customer_id ",
            "Row",
            " row",
            "qualification",
            "elapsed_ms",
        ]))
        .expect("moved columns");
        assert_eq!(layout.width, 7);
        let at = |name: &str| {
            layout.at[COLUMNS
                .iter()
                .position(|c| c.name == name)
                .expect("a column")]
        };
        assert_eq!(
            at("row"),
            Some(4),
            "names are trimmed but matched exactly (not `Row`)"
        );
        assert_eq!(at("customer_id"), Some(2));
        assert_eq!(at("qualification"), Some(5));
        assert_eq!(at("outcome"), Some(1));
        assert_eq!(at("elapsed_ms"), Some(6));
        assert_eq!(at("request_id"), None, "an optional column may be absent");

        let mut record = header(&["a note", "created", "x", "", "7", "Education", "12"]);
        let row = layout.read(&record).expect("a row");
        assert_eq!((row.row, row.customer_id.as_str()), (7, "x"));
        assert_eq!(row.outcome, Some(Outcome::Created));
        assert_eq!(
            (row.elapsed_ms, row.attempts, row.request_id),
            (12, 0, None)
        );
        record.push_field(b"one too many");
        assert!(matches!(
            layout.read(&record),
            Err(ResultsRowError::FieldCount {
                found: 8,
                expected: 7
            })
        ));
    }

    #[test]
    fn a_missing_required_or_a_doubled_column_is_named() {
        assert_eq!(
            Layout::from_header(&header(&["row", "customer_id", "qualification", "status"])),
            Err(HeaderError::Missing("outcome"))
        );
        assert_eq!(
            Layout::from_header(&header(&["customer_id", "qualification"])),
            Err(HeaderError::Missing("row"))
        );
        assert_eq!(
            Layout::from_header(&header(&[
                "row",
                "customer_id",
                "qualification",
                "outcome",
                "outcome "
            ])),
            Err(HeaderError::Twice("outcome"))
        );
    }

    #[test]
    fn numbers_are_checked_into_their_fields() {
        let layout = Layout::from_header(&header(&[
            "row",
            "customer_id",
            "qualification",
            "outcome",
            "attempts",
            "http_status",
        ]))
        .expect("header");
        let read = |attempts: &str, status: &str| {
            layout.read(&header(&["1", "c", "q", "failed", attempts, status]))
        };
        assert_eq!(read(" 3 ", "503").expect("fits").attempts, 3);
        assert!(matches!(
            read("4294967296", ""),
            Err(ResultsRowError::OutOfRange {
                field: "attempts",
                value: 4_294_967_296
            })
        ));
        assert!(matches!(
            read("1", "65536"),
            Err(ResultsRowError::OutOfRange {
                field: "http_status",
                ..
            })
        ));
        assert!(matches!(
            read("-1", ""),
            Err(ResultsRowError::NotANumber {
                field: "attempts",
                ..
            })
        ));
        assert!(matches!(
            layout.read(&header(&["", "c", "q", "failed", "", ""])),
            Err(ResultsRowError::EmptyRow)
        ));
        // Rows count from 1 (issue 22: `--resume` called a row 0 missing from the input).
        assert!(matches!(
            layout.read(&header(&["0", "c", "q", "failed", "", ""])),
            Err(ResultsRowError::OutOfRange {
                field: "row",
                value: 0
            })
        ));
    }
}
