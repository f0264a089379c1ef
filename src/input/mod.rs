//! Streaming reader of the input rows (a CSV stream, or a workbook sheet's rows from
//! [`crate::input::sheet`]): maps the header, validates each data record and spots duplicates, without
//! holding the file in memory. [`crate::input::source`] decides the format, encoding and delimiter.
//!
//! # Contract
//!
//! The header (cells compared through [`folded`](crate::domain::model), the columns in [`columns::COLUMNS`]), blank
//! records, row numbers and the checks are as docs/input-and-results.md says. Every record after
//! the header that is not blank (all cells empty after trimming Unicode white space) yields
//! exactly one [`Record`]: bad content becomes a [`Record::Rejected`] row and never aborts the
//! read. Only a failure to read the stream, or CSV text that is not UTF-8
//! ([`InputError::NotUtf8`]), is an `Err`, after which the reader is finished. Cells are trimmed
//! and decoded only when used. Validity depends only on [`InputOptions`], never on the command.
//!
//! # Memory
//!
//! One reused [`ByteRecord`] (as large as the largest record) plus the duplicate index, which
//! holds one 32-byte entry per distinct valid (customer, qualification) pair (plus the hash
//! table's control byte and spare capacity).

mod error;
pub use error::InputFileError;

mod columns;
pub(crate) mod dedup;
pub(crate) mod sheet;
pub mod source;
mod validate;

use std::borrow::Cow;
use std::io::{self, Read};

use csv::{ByteRecord, ReaderBuilder};

use crate::domain::model::{
    ApiContract, CustomerId, EducationSegment, Outcome, Qualification, ResultRow, Row,
};
use crate::input::dedup::DuplicateIndex;
use columns::*;
use source::{Encoding, Format};
use validate::*;

/// Local `error_code` of a row whose customer id is not a GUID.
pub const INVALID_CUSTOMER_ID: &str = "invalid_customer_id";
/// Local `error_code` of a row whose qualification is empty, unknown or not settable.
pub const INVALID_QUALIFICATION: &str = "invalid_qualification";
/// Local `error_code` of a row too short to reach a required column.
pub const MISSING_FIELD: &str = "missing_field";
/// Local `error_code` of a row with an unknown education segment.
pub const INVALID_EDUCATION_SEGMENT: &str = "invalid_education_segment";
/// Local `error_code` of an Education row without a segment under the 2022 contract.
pub const MISSING_EDUCATION_SEGMENT: &str = "missing_education_segment";
/// Local `error_code` of a GovernmentCommunityCloud row without a validation code.
pub const MISSING_VALIDATION_CODE: &str = "missing_validation_code";
/// Local `error_code` of a row repeating an earlier valid row's customer and qualification.
pub const DUPLICATE: &str = "duplicate";
/// Local `error_code` of a record the CSV parser itself refused (not expected in practice).
pub const INVALID_RECORD: &str = "invalid_record";

/// How rows are validated; the same for every command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputOptions {
    /// The request contract rows will be sent with (decides whether Education needs a segment).
    pub contract: ApiContract,
    /// `--education-segment`: used by Education rows whose segment cell is empty or absent.
    pub default_segment: Option<EducationSegment>,
    /// `--validation-code`: used by GovernmentCommunityCloud rows whose code cell is empty or absent.
    pub default_validation_code: Option<String>,
}

/// One data record of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A valid row, ready to send.
    Valid(Row),
    /// A row that will not be sent: outcome `Invalid` or `Duplicate`, with `row`,
    /// `customer_id`, `qualification`, `error_code` and `error_message` filled and 0 attempts.
    Rejected(ResultRow),
}

/// Why the input cannot be read at all. Messages are one line and name no path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// No header: the file is empty, or holds only blank lines or a byte-order mark.
    #[error("the file is empty (no header row)")]
    Empty,
    /// The header lacks a required column.
    #[error("missing required column {column}{}; {header}", also_accepted(aliases))]
    MissingColumn {
        /// The column's canonical name.
        column: &'static str,
        /// Other accepted spellings.
        aliases: &'static [&'static str],
        /// The header cells as split, how they were split, and what to try.
        header: String,
    },
    /// CSV bytes that are not UTF-8 (a Latin-1/"ANSI" export, for example).
    #[error("the file is not UTF-8 text: line {line} holds bytes that are not UTF-8 (an \"ANSI\" or Latin-1 export?); re-save it as UTF-8: in Excel, Save As \"CSV UTF-8 (Comma delimited) (*.csv)\"; in LibreOffice, Save As \"Text CSV\" with character set \"Unicode (UTF-8)\"")]
    NotUtf8 {
        /// 1-based line of the first record holding a bad byte.
        line: u64,
    },
    /// The header record could not be parsed.
    #[error("unreadable header: {0}")]
    Header(String),
    /// Reading the underlying stream failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// Lossy UTF-8 decoding plus trimming, borrowing when the bytes are valid.
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    // The strict check first: on valid text it is several times cheaper than the lossy walk.
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text.trim());
    }
    Cow::Owned(String::from_utf8_lossy(bytes).trim().to_owned())
}

/// Whether a cell is empty after trimming Unicode white space (decoded lossily).
fn cell_is_blank(cell: &[u8]) -> bool {
    match cell.iter().find(|b| !b.is_ascii_whitespace()) {
        None => true,
        // The common case: a printable ASCII byte settles it without decoding.
        Some(&b) if b.is_ascii() && !char::from(b).is_whitespace() => false,
        Some(_) => String::from_utf8_lossy(cell).trim().is_empty(),
    }
}

/// Whether every field of a record is empty after trimming; `bom` also ignores a leading BOM.
fn record_is_blank(record: &ByteRecord, bom: bool) -> bool {
    record.iter().enumerate().all(|(i, cell)| {
        let skip: &[u8] = if bom && i == 0 { b"\xef\xbb\xbf" } else { b"" };
        cell_is_blank(cell.strip_prefix(skip).unwrap_or(cell))
    })
}

/// A csv error as the I/O error it wraps (or an I/O error describing it).
pub(crate) fn csv_to_io(err: csv::Error) -> io::Error {
    match err.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// The longest record read by default (`--max-record-bytes`): far beyond any row of customers,
/// and small enough that a file with no line breaks (`/dev/zero`, a binary, one 200 MB cell)
/// is refused in bounded memory instead of read whole into one record.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The record source's view of the stream: retries reads interrupted by a signal (the csv
/// reader treats any I/O error as final), and counts the bytes read since the last record
/// ended, failing once no record has ended within twice the limit (plus the csv reader's
/// read-ahead): then no row boundary can be found and the file is refused.
struct Bounded<R> {
    inner: R,
    since_record: usize,
    limit: usize,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.since_record = self.since_record.saturating_add(n);
        let refuse_after = self.limit.saturating_mul(2).saturating_add(64 * 1024);
        if self.since_record > refuse_after {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "no record ends within {refuse_after} bytes (a record may hold at most {} bytes; --max-record-bytes raises that): this is not a file of customer rows",
                    self.limit
                ),
            ));
        }
        Ok(n)
    }
}

/// What the next non-blank record is.
enum Step {
    /// A record, now in `Source::record`.
    Record,
    /// The parser refused one record (not an I/O error); reading can go on.
    Malformed(csv::Error),
    /// No more records.
    End,
    /// The stream failed, or a CSV record holds bytes that are not UTF-8; the source is finished.
    Failed(InputError),
    /// The record (now in `Source::record`) is longer than the limit: not read as a row.
    TooLong(usize),
}

/// Where records come from: a delimited text stream, or a workbook sheet's rows.
enum Feed<R: Read> {
    Csv(csv::Reader<Bounded<R>>),
    Sheet(crate::input::sheet::SheetRows),
}

/// The record feed, its one reused record, and the blank-record rule, shared by
/// [`InputReader`] and the record counters so they always agree.
struct Source<R: Read> {
    feed: Feed<R>,
    /// The longest record read as a row, in bytes.
    limit: usize,
    record: ByteRecord,
    /// The sheet's row number of `record` (sheets only).
    sheet_row: Option<u64>,
    first: bool,
    done: bool,
}

impl<R: Read> Source<R> {
    fn csv(reader: R, delimiter: u8, limit: usize) -> Self {
        let csv = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(Bounded {
                inner: reader,
                since_record: 0,
                limit,
            });
        Source::with_feed(Feed::Csv(csv), limit)
    }

    fn with_feed(feed: Feed<R>, limit: usize) -> Self {
        Source {
            feed,
            limit,
            record: ByteRecord::new(),
            sheet_row: None,
            first: true,
            done: false,
        }
    }

    fn next(&mut self) -> Step {
        while !self.done {
            let csv = match &mut self.feed {
                Feed::Csv(csv) => csv,
                Feed::Sheet(rows) => match rows.next() {
                    None => {
                        self.done = true;
                        continue;
                    }
                    Some(Err(e)) => {
                        self.done = true;
                        return Step::Failed(InputError::Io(e));
                    }
                    Some(Ok((row, cells))) => {
                        self.record.clear();
                        self.record.extend(&cells);
                        self.sheet_row = Some(row);
                        if self.record.as_slice().len() > self.limit {
                            return Step::TooLong(self.record.as_slice().len());
                        }
                        if !record_is_blank(&self.record, false) {
                            return Step::Record;
                        }
                        continue;
                    }
                },
            };
            let before = csv.position().byte();
            match csv.read_byte_record(&mut self.record) {
                Ok(false) => self.done = true,
                Ok(true) => {
                    csv.get_mut().since_record = 0;
                    let len = self.record.as_slice().len();
                    if len > self.limit {
                        self.first = false;
                        return Step::TooLong(len);
                    }
                    if std::str::from_utf8(self.record.as_slice()).is_err() {
                        // One check per record (cheap on valid text): a Latin-1 file must stop
                        // with a reason rather than send rows with mangled cells.
                        self.done = true;
                        let line = self.record.position().map_or(0, |p| p.line());
                        return Step::Failed(InputError::NotUtf8 { line });
                    }
                    let first = std::mem::replace(&mut self.first, false);
                    if !record_is_blank(&self.record, first) {
                        return Step::Record;
                    }
                }
                Err(e) if e.is_io_error() => {
                    self.done = true;
                    return Step::Failed(InputError::Io(csv_to_io(e)));
                }
                Err(e) => {
                    self.first = false;
                    if csv.position().byte() == before {
                        // No progress: stop rather than loop on the same error.
                        self.done = true;
                    } else {
                        return Step::Malformed(e);
                    }
                }
            }
        }
        Step::End
    }
}

/// Streaming reader of the input rows; see the [module documentation](self) for the rules.
pub struct InputReader<R: Read> {
    source: Source<R>,
    columns: Columns,
    opts: InputOptions,
    index: u64,
    seen: DuplicateIndex,
}

impl<R: Read> InputReader<R> {
    /// Reads and maps the header of comma-separated text.
    ///
    /// Fails when there is no header at all ([`InputError::Empty`]), when `customer_id` or
    /// `qualification` is missing, when the header cannot be parsed, or when reading fails.
    pub fn new(reader: R, opts: InputOptions) -> Result<Self, InputError> {
        let format = Format::Csv {
            encoding: Encoding::Utf8,
            delimiter: b',',
            detected: true,
        };
        InputReader::start(Source::csv(reader, b',', MAX_RECORD_BYTES), &format, opts)
    }

    /// Reads and maps the header of `source`, split as `format` says.
    fn start(
        mut source: Source<R>,
        format: &Format,
        opts: InputOptions,
    ) -> Result<Self, InputError> {
        match source.next() {
            Step::Record => {}
            Step::Malformed(e) => return Err(InputError::Header(one_line(&e.to_string()))),
            Step::TooLong(len) => {
                return Err(InputError::Header(format!(
                "the header row is {len} bytes, more than a row may hold ({}; --max-record-bytes)",
                source.limit
            )))
            }
            Step::End => return Err(InputError::Empty),
            Step::Failed(e) => return Err(e),
        }
        let header_row = source.sheet_row.unwrap_or(1);
        let columns = Columns::from_header(&source.record, format, header_row)?;
        Ok(InputReader {
            source,
            columns,
            opts,
            index: 0,
            seen: DuplicateIndex::default(),
        })
    }

    /// The next data record; `None` at the end. `Err` only when reading the stream fails, after
    /// which every call returns `None`.
    pub fn next_record(&mut self) -> Option<Result<Record, InputError>> {
        let step = self.source.next();
        self.index = self.source.sheet_row.unwrap_or(self.index + 1);
        let limit = self.source.limit;
        let message = match step {
            Step::Record => return Some(Ok(self.classify())),
            Step::Malformed(e) => format!("record: {}", one_line(&e.to_string())),
            Step::TooLong(len) => format!(
                "record: {len} bytes, more than the {limit} a row may hold (--max-record-bytes); not read"
            ),
            Step::End => return None,
            Step::Failed(e) => return Some(Err(e)),
        };
        // A record that could not be read is an `invalid_record` row, its cells unknown.
        let why = Rejection::invalid(INVALID_RECORD, message);
        let row = rejected(self.index, String::new(), String::new(), why);
        Some(Ok(Record::Rejected(row)))
    }

    /// Sets the default validation code once it is known (after `--validation-code auto` has
    /// read the partner's codes); call it before the first record.
    pub fn set_default_validation_code(&mut self, code: Option<String>) {
        self.opts.default_validation_code = code;
    }

    /// Counts an earlier run's settled rows (key and row number) as seen before this input is
    /// read (`--resume`): a row with the same customer and qualification is then a duplicate of
    /// the settled one wherever it stands, and the settled row itself reads as valid (the resume
    /// skips it). Otherwise a fixed invalid row above a settled duplicate became the first
    /// occurrence and was posted again. Call it before the first record.
    pub fn seed_settled(&mut self, rows: impl IntoIterator<Item = ((u128, u8), u64)>) {
        for (key, row) in rows {
            if self.seen.first_row(key).is_none() {
                self.seen.insert(key, row);
            }
        }
    }

    fn classify(&mut self) -> Record {
        let (record, index) = (&self.source.record, self.index);
        let why = match validate(record, &self.columns, &self.opts, index) {
            Ok(row) => match self.seen.first_row(row.key()) {
                None => {
                    self.seen.insert(row.key(), index);
                    return Record::Valid(row);
                }
                // A settled row of the run resumed (`seed_settled`).
                Some(first) if first == index => return Record::Valid(row),
                Some(first) => Rejection {
                    outcome: Outcome::Duplicate,
                    code: DUPLICATE,
                    message: format!("same customer and qualification as row {first}"),
                },
            },
            Err(rejection) => rejection,
        };
        // The rejected row names the customer and qualification as parsed, else as given.
        let cell = |column| self.columns.optional(record, column);
        let (id, qualification) = (cell(CUSTOMER_ID), cell(QUALIFICATION));
        let id = CustomerId::parse(&id).map_or_else(|| id.into_owned(), |id| id.to_string());
        let qualification = Qualification::parse(&qualification)
            .map_or_else(|_| qualification.into_owned(), |q| q.as_str().to_owned());
        Record::Rejected(rejected(index, id, qualification, why))
    }
}

impl<R: Read> Iterator for InputReader<R> {
    type Item = Result<Record, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// Counts the data records [`InputReader`] would yield from `source` (same header and
/// blank-record rules), without validating them; for a progress bar's total. A file without a
/// header counts 0.
fn count<R: Read>(mut source: Source<R>) -> io::Result<u64> {
    // Records counted, the header among them (a header that is not a record counts 0).
    let mut records = 0u64;
    loop {
        match source.next() {
            Step::Malformed(_) | Step::TooLong(_) if records == 0 => return Ok(0),
            Step::Record | Step::Malformed(_) | Step::TooLong(_) => records += 1,
            Step::End => return Ok(records.saturating_sub(1)),
            Step::Failed(InputError::Io(e)) => return Err(e),
            Step::Failed(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row longer than the limit is `invalid` and the rows after it are read; a stream in
    /// which no row ends (`/dev/zero`, one endless cell) is refused after a bounded read.
    #[test]
    fn reads_are_bounded_by_the_record_limit() {
        let long = "x".repeat(3000);
        let text = format!(
            "customer_id,qualification\n{long},StateOwnedEntity\n00000000-0000-4000-8000-000000000001,StateOwnedEntity\n"
        );
        let layout = csv_format(b',', true);
        let reader = InputReader::start(Source::csv(text.as_bytes(), b',', 2048), &layout, opts())
            .expect("header");
        let records: Vec<_> = reader.map(|r| r.expect("readable")).collect();
        assert_eq!(records.len(), 2);
        let Record::Rejected(row) = &records[0] else {
            panic!("the long row is rejected: {:?}", records[0]);
        };
        assert_eq!(row.error_code.as_deref(), Some(INVALID_RECORD));
        assert!(
            row.error_message
                .as_deref()
                .unwrap_or("")
                .contains("more than the 2048"),
            "{row:?}"
        );
        assert!(matches!(records[1], Record::Valid(_)));

        let endless = b"customer_id,qualification\n".chain(std::io::repeat(b'0'));
        let mut reader =
            InputReader::start(Source::csv(endless, b',', 2048), &layout, opts()).expect("header");
        match reader.next_record() {
            Some(Err(InputError::Io(e))) => {
                assert!(e.to_string().contains("no record ends within"), "{e}")
            }
            other => panic!("an endless record is refused, got {other:?}"),
        }
        assert!(reader.next_record().is_none());
        assert!(count(Source::csv(std::io::repeat(b','), b',', 2048)).is_err());
    }
    use proptest::prelude::*;

    const A: &str = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7";
    const B: &str = "11111111-2222-3333-4444-555555555555";
    const HEADER: &str = "customer_id,qualification,validation_code,education_segment,website\n";

    fn opts() -> InputOptions {
        InputOptions::default()
    }

    fn csv_format(delimiter: u8, detected: bool) -> Format {
        Format::Csv {
            encoding: Encoding::Utf8,
            delimiter,
            detected,
        }
    }

    /// What the progress bar's count of comma-separated text is.
    fn count_records<R: Read>(reader: R) -> io::Result<u64> {
        count(Source::csv(reader, b',', MAX_RECORD_BYTES))
    }

    fn read_all(input: &[u8], opts: InputOptions) -> Vec<Record> {
        let mut reader = InputReader::new(input, opts).expect("header");
        let mut out = Vec::new();
        while let Some(record) = reader.next_record() {
            out.push(record.expect("no I/O error"));
        }
        assert_eq!(count_records(input).expect("count"), out.len() as u64);
        out
    }

    fn read_str(input: &str) -> Vec<Record> {
        read_all(input.as_bytes(), opts())
    }

    fn as_valid(record: &Record) -> &Row {
        match record {
            Record::Valid(row) => row,
            Record::Rejected(r) => panic!("expected a valid row, got {r:?}"),
        }
    }

    /// `input` read under each contract, with K12 for Education rows and `code` for GCC rows
    /// that leave them empty.
    fn under_both_contracts(input: &str, code: Option<&str>) -> [Vec<Record>; 2] {
        [ApiContract::V2021, ApiContract::V2022].map(|contract| {
            let options = InputOptions {
                contract,
                default_segment: Some(EducationSegment::K12),
                default_validation_code: code.map(str::to_owned),
            };
            read_all(input.as_bytes(), options)
        })
    }

    /// The validation code of a row that must be valid.
    fn code(record: &Record) -> Option<&str> {
        as_valid(record).validation_code.as_deref()
    }

    fn as_rejected(record: &Record) -> &ResultRow {
        match record {
            Record::Rejected(r) => r,
            Record::Valid(row) => panic!("expected a rejected row, got {row:?}"),
        }
    }

    /// Asserts an invalid row with this code and a message starting with `prefix`.
    fn assert_invalid(record: &Record, code: &str, prefix: &str) -> ResultRow {
        let r = as_rejected(record).clone();
        assert_eq!(r.outcome, Some(Outcome::Invalid), "{r:?}");
        assert_eq!(r.error_code.as_deref(), Some(code), "{r:?}");
        let message = r.error_message.clone().expect("message");
        assert!(message.starts_with(prefix), "{message:?} !~ {prefix:?}");
        assert!(!message.contains('\n'), "{message:?}");
        assert_eq!(r.attempts, 0);
        r
    }

    fn header_error(input: &[u8]) -> InputError {
        match InputReader::new(input, opts()) {
            Ok(_) => panic!("expected a header error"),
            Err(e) => e,
        }
    }

    #[test]
    fn reads_valid_rows_of_every_qualification() {
        let input = format!(
            "{HEADER}{A},Education,,K12,https://school.example\n{A},gcc,12345,,\n{B},State Owned Entity,,,\n"
        );
        let records = read_str(&input);
        assert_eq!(records.len(), 3);
        let edu = as_valid(&records[0]);
        assert_eq!(edu.index, 1);
        assert_eq!(edu.customer_id.to_string(), A);
        assert_eq!(edu.qualification, Qualification::Education);
        assert_eq!(edu.segment, Some(EducationSegment::K12));
        assert_eq!(edu.website.as_deref(), Some("https://school.example"));
        assert_eq!(edu.validation_code, None);
        let gcc = as_valid(&records[1]);
        assert_eq!(gcc.index, 2);
        assert_eq!(gcc.qualification, Qualification::GovernmentCommunityCloud);
        assert_eq!(gcc.validation_code.as_deref(), Some("12345"));
        assert_eq!(gcc.segment, None);
        assert_eq!(gcc.website, None);
        let soe = as_valid(&records[2]);
        assert_eq!(soe.qualification, Qualification::StateOwnedEntity);
        assert_eq!(
            (
                soe.segment,
                soe.validation_code.clone(),
                soe.website.clone()
            ),
            (None, None, None)
        );
    }

    #[test]
    fn bom_crlf_spaces_and_upper_case_guids_are_tolerated() {
        let input = format!(
            "\u{feff}Customer_ID , Qualification\r\n  {} , education \r\n{B},StateOwnedEntity\r\n",
            A.to_uppercase()
        );
        let records = read_all(
            input.as_bytes(),
            InputOptions {
                contract: ApiContract::V2021,
                ..opts()
            },
        );
        assert_eq!(records.len(), 2);
        let row = as_valid(&records[0]);
        assert_eq!(row.customer_id.to_string(), A);
        assert_eq!(row.qualification, Qualification::Education);
        assert_eq!(as_valid(&records[1]).index, 2);
    }

    #[test]
    fn header_aliases_and_spellings_match() {
        for header in [
            "Customer-Tenant-ID,QUALIFICATION,Code,Segment,Website",
            " Tenant Id ,qualification,Validation Code,Education-Segment,WEBSITE",
            "tenant_id,Qualification,validation_code,education_segment,website",
            "customer id,qualification,validation-code,education segment,web_site",
        ] {
            let input =
                format!("{header}\n{A},Education,,HigherEducation,x.example\n{B},GCC,42,,\n");
            let records = read_str(&input);
            let edu = as_valid(&records[0]);
            assert_eq!(
                edu.segment,
                Some(EducationSegment::HigherEducation),
                "{header}"
            );
            assert_eq!(code(&records[1]), Some("42"));
        }
    }

    #[test]
    fn columns_may_come_in_any_order_and_extra_columns_are_ignored() {
        let input = format!("note,qualification,extra,customer_id\nhello,StateOwnedEntity,,{A}\n");
        let records = read_str(&input);
        assert_eq!(as_valid(&records[0]).customer_id.to_string(), A);
    }

    #[test]
    fn the_first_header_cell_for_a_column_wins() {
        let input =
            format!("tenant_id,customer_id,qualification\n{A},not-a-guid,StateOwnedEntity\n");
        assert_eq!(as_valid(&read_str(&input)[0]).customer_id.to_string(), A);
        let input = format!("customer_id,qualification,qualification\n{A},Education,bogus\n");
        let records = read_all(
            input.as_bytes(),
            InputOptions {
                default_segment: Some(EducationSegment::K12),
                ..opts()
            },
        );
        assert_eq!(
            as_valid(&records[0]).qualification,
            Qualification::Education
        );
    }

    #[test]
    fn missing_required_columns_are_named() {
        let e = header_error(b"qualification,website\nEducation,x\n");
        assert!(matches!(
            e,
            InputError::MissingColumn {
                column: "customer_id",
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "missing required column customer_id (also accepted: customer_tenant_id, tenant_id, microsoft_id); the header row, split on ',' (comma) (detected), has 2 cells: [\"qualification\", \"website\"]; if the file uses another separator, say which with --delimiter (comma, semicolon, tab or pipe)"
        );
        let e = header_error(b"tenant_id,code\n");
        assert!(
            e.to_string().starts_with("missing required column qualification (also accepted: qualification_type); the header row"),
            "{e}"
        );
        // Both missing: customer_id is named first.
        let e = header_error(b"a,b,c\n1,2,3\n");
        assert!(e.to_string().contains("customer_id"));
    }

    #[test]
    fn a_header_split_wrongly_is_shown_as_split() {
        // A semicolon file read as comma-separated: one cell holding the whole line.
        let input = "\u{feff}customer_id;qualification\r\nx;y\r\n";
        let e = header_error(input.as_bytes());
        let message = e.to_string();
        assert!(
            message.starts_with("missing required column customer_id"),
            "{message}"
        );
        assert!(
            message.contains(
                "split on ',' (comma) (detected), has 1 cell: [\"customer_id;qualification\"]"
            ),
            "{message}"
        );
        assert!(message.contains("--delimiter"), "{message}");
        // Split on the right delimiter, the same file reads.
        let source = Source::csv(input.as_bytes(), b';', MAX_RECORD_BYTES);
        let reader = InputReader::start(source, &csv_format(b';', false), opts()).expect("header");
        assert_eq!(reader.count(), 1);
        // Many cells are cut short, and a sheet's header names its row and sheet.
        let wide: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        let e = header_error(format!("{}\n", wide.join(",")).as_bytes());
        assert!(e.to_string().contains("\"c11\", … (8 more)]"), "{e}");
        let mut header = ByteRecord::new();
        header.push_field(b"Name");
        let sheet = Format::Workbook {
            kind: sheet::WorkbookKind::Xlsx,
            sheet: "Schools".into(),
        };
        let text = sheet.describe_header(&header, 3);
        assert_eq!(text, "the header (row 3 of sheet \"Schools\") has 1 cell: [\"Name\"]; choose another sheet with --sheet NAME");
    }

    #[test]
    fn header_aliases_from_spreadsheets_match() {
        for header in [
            "CustomerID,Qualification,Validation Code,Segment,Domain",
            "Customer Id,Qualification Type,Code,Education Segment,Website",
            "Tenant ID,QualificationType,validation_code,EDUCATION-SEGMENT,domain",
            "Microsoft ID,qualification,CODE,segment,web site",
        ] {
            let input = format!("{header}\n{A},Education,,K12,x.example\n{B},GCC,42,,\n");
            let records = read_str(&input);
            let edu = as_valid(&records[0]);
            assert_eq!(edu.segment, Some(EducationSegment::K12), "{header}");
            assert_eq!(edu.website.as_deref(), Some("x.example"), "{header}");
            assert_eq!(code(&records[1]), Some("42"), "{header}");
        }
    }

    #[test]
    fn empty_inputs_have_no_header() {
        for input in [
            &b""[..],
            b"\xef\xbb\xbf",
            b"\xef\xbb\xbf\r\n",
            b"   \n\n \t \r\n",
            b"\xef\xbb\xbf  \r\n\r\n",
            b",,,\n  ,  \n",
        ] {
            assert!(
                matches!(header_error(input), InputError::Empty),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(count_records(input).expect("count"), 0);
        }
        assert_eq!(
            InputError::Empty.to_string(),
            "the file is empty (no header row)"
        );
    }

    #[test]
    fn a_header_only_file_yields_nothing() {
        assert!(read_str("customer_id,qualification").is_empty());
        assert!(read_str("customer_id,qualification\r\n\r\n  \r\n,,\r\n").is_empty());
        // Blank lines before the header are skipped.
        let input = format!("\n  \n{HEADER}{A},StateOwnedEntity\n");
        assert_eq!(read_str(&input).len(), 1);
    }

    #[test]
    fn blank_records_are_skipped_and_not_counted() {
        let input = format!(
            "{HEADER}\n{A},StateOwnedEntity\n   \n\r\n,,,,\n , ,\"\" \n\"\"\n\t\n{B},StateOwnedEntity\n\u{a0}\n{B},Education,,K12\n\n"
        );
        let records = read_str(&input);
        let indices: Vec<u64> = records.iter().map(|r| as_valid(r).index).collect();
        assert_eq!(indices, [1, 2, 3]);
    }

    #[test]
    fn bytes_that_are_not_utf8_stop_the_reader_naming_the_line() {
        // Latin-1 "café" in an ignored column on the second data line.
        let mut input =
            format!("customer_id,notes,qualification\n{A},ok,StateOwnedEntity\n{B},caf")
                .into_bytes();
        input.extend_from_slice(b"\xe9,StateOwnedEntity\n");
        let mut reader = InputReader::new(&input[..], opts()).expect("header");
        as_valid(&reader.next_record().expect("first").expect("read"));
        let e = reader
            .next_record()
            .expect("an error")
            .expect_err("not UTF-8");
        assert!(matches!(e, InputError::NotUtf8 { line: 3 }), "{e:?}");
        let message = e.to_string();
        assert!(
            message.contains("not UTF-8") && message.contains("line 3"),
            "{message}"
        );
        assert!(
            message.contains("CSV UTF-8"),
            "says how to re-save: {message}"
        );
        assert!(reader.next_record().is_none());
        let count = count_records(&input[..]).expect_err("not UTF-8");
        assert_eq!(count.kind(), io::ErrorKind::InvalidData);
        // In the header, it is the header that fails.
        let e = header_error(b"customer_id,qualifica\xe7ion\n");
        assert!(matches!(e, InputError::NotUtf8 { line: 1 }), "{e:?}");
    }

    /// A cell as long as a row may hold (less the row's other cells) is read.
    #[test]
    fn a_cell_up_to_the_record_limit_is_read() {
        let big = "x".repeat(MAX_RECORD_BYTES - 100);
        let input = format!("customer_id,notes,qualification\n{A},{big},StateOwnedEntity\n{big},,StateOwnedEntity\n");
        let records = read_str(&input);
        assert_eq!(records.len(), 2);
        as_valid(&records[0]);
        let r = assert_invalid(
            &records[1],
            INVALID_CUSTOMER_ID,
            "customer_id: not a GUID: xxx",
        );
        assert_eq!(r.customer_id.len(), MAX_RECORD_BYTES - 100);
        assert!(r.error_message.expect("message").len() < 200);
    }

    #[test]
    fn customer_ids_must_be_guids() {
        let input = "customer_id,qualification\nnot-a-guid,Education\n,StateOwnedEntity\n\"a\nb\",StateOwnedEntity\n";
        let records = read_str(input);
        let r = assert_invalid(
            &records[0],
            INVALID_CUSTOMER_ID,
            "customer_id: not a GUID: not-a-guid",
        );
        assert_eq!(r.customer_id, "not-a-guid");
        assert_eq!(r.qualification, "Education");
        assert_invalid(
            &records[1],
            INVALID_CUSTOMER_ID,
            "customer_id: not a GUID: (empty)",
        );
        let r = assert_invalid(
            &records[2],
            INVALID_CUSTOMER_ID,
            "customer_id: not a GUID: a\\nb",
        );
        assert_eq!(r.customer_id, "a\nb");
    }

    #[test]
    fn qualifications_must_be_settable() {
        let input =
            format!("customer_id,qualification\n{A},\n{A},school\n{A},Nonprofit\n{A},none\n");
        let records = read_str(&input);
        let r = assert_invalid(&records[0], INVALID_QUALIFICATION, "qualification: empty");
        assert_eq!(r.customer_id, A);
        assert_eq!(r.qualification, "");
        let r = assert_invalid(
            &records[1],
            INVALID_QUALIFICATION,
            "qualification: unknown qualification",
        );
        assert_eq!(r.qualification, "school");
        assert_invalid(
            &records[2],
            INVALID_QUALIFICATION,
            "qualification: Nonprofit exists in Partner Center but cannot be set",
        );
        assert_invalid(
            &records[3],
            INVALID_QUALIFICATION,
            "qualification: None exists in Partner Center",
        );
    }

    #[test]
    fn rejected_rows_echo_canonical_values_when_they_parsed() {
        let input = format!(
            "customer_id,qualification,segment\n {} ,gcc,college\n",
            A.to_uppercase()
        );
        let r = assert_invalid(
            &read_str(&input)[0],
            INVALID_EDUCATION_SEGMENT,
            "education_segment: ",
        );
        assert_eq!(r.customer_id, A);
        assert_eq!(r.qualification, "GovernmentCommunityCloud");
    }

    #[test]
    fn the_first_bad_field_in_column_order_is_reported() {
        // Header order differs from the reporting order.
        let input = "code,segment,qualification,customer_id\nabc,college,school,nope\nabc,college,GCC,{A}\nabc,K12,GCC,{A}\n"
            .replace("{A}", A);
        let records = read_str(&input);
        assert_invalid(&records[0], INVALID_CUSTOMER_ID, "customer_id:");
        assert_invalid(&records[1], INVALID_EDUCATION_SEGMENT, "education_segment:");
        // A validation code is text: letters are no error.
        assert_eq!(code(&records[2]), Some("abc"));
    }

    #[test]
    fn education_needs_a_segment_under_2022_only() {
        let input = format!(
            "customer_id,qualification,education_segment\n{A},Education,\n{B},Education,k-12\n"
        );
        let records = read_str(&input);
        assert_invalid(
            &records[0],
            MISSING_EDUCATION_SEGMENT,
            "education_segment: required for Education under the 2022 API contract (set the column or --education-segment)",
        );
        assert_eq!(as_valid(&records[1]).segment, Some(EducationSegment::K12));

        let v2021 = InputOptions {
            contract: ApiContract::V2021,
            ..opts()
        };
        let records = read_all(input.as_bytes(), v2021.clone());
        assert_eq!(as_valid(&records[0]).segment, None);
        assert_eq!(as_valid(&records[1]).segment, Some(EducationSegment::K12));
        // Without the column at all.
        let input = format!("customer_id,qualification\n{A},Education\n");
        assert_invalid(
            &read_str(&input)[0],
            MISSING_EDUCATION_SEGMENT,
            "education_segment:",
        );
        assert_eq!(
            as_valid(&read_all(input.as_bytes(), v2021)[0]).segment,
            None
        );
    }

    #[test]
    fn the_default_segment_fills_empty_cells_only() {
        let input = format!("customer_id,qualification,segment\n{A},Education,\n{B},Education,Higher Education\n{B},StateOwnedEntity,\n");
        for records in under_both_contracts(&input, None) {
            assert_eq!(as_valid(&records[0]).segment, Some(EducationSegment::K12));
            assert_eq!(
                as_valid(&records[1]).segment,
                Some(EducationSegment::HigherEducation)
            );
            assert_eq!(as_valid(&records[2]).segment, None);
        }
    }

    #[test]
    fn an_unknown_segment_is_invalid_on_any_row_under_either_contract() {
        let input = format!(
            "customer_id,qualification,segment\n{A},Education,college\n{A},StateOwnedEntity,college\n{A},GCC,university\n{B},StateOwnedEntity,K12\n"
        );
        for records in under_both_contracts(&input, Some("1")) {
            for record in &records[..3] {
                assert_invalid(
                    record,
                    INVALID_EDUCATION_SEGMENT,
                    "education_segment: unknown education segment",
                );
            }
            // A valid segment on a non-Education row is ignored.
            assert_eq!(as_valid(&records[3]).segment, None);
        }
    }

    #[test]
    fn gcc_needs_a_code_as_text() {
        let input = format!(
            "customer_id,qualification,validation_code\n{A},GCC,\n{A},GovernmentCommunityCloud,12a4\n{B},gcc, 0042 \n{B},StateOwnedEntity,not digits\n{B},Education,abc\n"
        );
        for records in under_both_contracts(&input, None) {
            assert_invalid(
                &records[0],
                MISSING_VALIDATION_CODE,
                "validation_code: required for GovernmentCommunityCloud",
            );
            assert_eq!(code(&records[1]), Some("12a4"));
            assert_eq!(code(&records[2]), Some("0042"));
            // The code is ignored off GCC rows.
            assert_eq!(as_valid(&records[3]).validation_code, None);
            assert_eq!(as_valid(&records[4]).validation_code, None);
        }
    }

    #[test]
    fn the_default_code_fills_empty_cells_only() {
        let input = format!("customer_id,qualification,code\n{A},GCC,\n{B},GCC,777\n");
        let with = |code: &str| InputOptions {
            default_validation_code: Some(code.to_owned()),
            ..opts()
        };
        let records = read_all(input.as_bytes(), with(" 123 "));
        assert_eq!(code(&records[0]), Some("123"));
        assert_eq!(code(&records[1]), Some("777"));
        let records = read_all(input.as_bytes(), with(" AB-12cd "));
        assert_eq!(code(&records[0]), Some("AB-12cd"));
        as_valid(&records[1]);
        // Without the column, the default applies to every GCC row.
        let input = format!("customer_id,qualification\n{A},GCC\n");
        assert_eq!(code(&read_all(input.as_bytes(), with("9"))[0]), Some("9"));
    }

    #[test]
    fn website_is_kept_for_education_only() {
        let input = format!(
            "customer_id,qualification,segment,website\n{A},Education,K12,  https://a.example  \n{B},Education,K12,   \n{A},StateOwnedEntity,,https://b.example\n"
        );
        let records = read_str(&input);
        assert_eq!(
            as_valid(&records[0]).website.as_deref(),
            Some("https://a.example")
        );
        assert_eq!(as_valid(&records[1]).website, None);
        assert_eq!(as_valid(&records[2]).website, None);
    }

    #[test]
    fn short_rows_name_the_missing_field() {
        let input = format!("qualification,customer_id,website,segment\nStateOwnedEntity\nschool\nEducation,{A}\nStateOwnedEntity,{A},a,,c,d,e\n");
        let records = read_str(&input);
        let r = assert_invalid(
            &records[0],
            MISSING_FIELD,
            "customer_id: missing; the row has 1 field, the header has 4",
        );
        assert_eq!(r.qualification, "StateOwnedEntity");
        assert_eq!(r.customer_id, "");
        // Too short for customer_id even though qualification is bad too.
        assert_invalid(&records[1], MISSING_FIELD, "customer_id: missing");
        // Optional cells missing are empty: Education without segment under 2022.
        assert_invalid(&records[2], MISSING_EDUCATION_SEGMENT, "education_segment:");
        // More fields than the header is fine.
        as_valid(&records[3]);

        let input = format!("customer_id,qualification\n{A}\n");
        let r = assert_invalid(
            &read_str(&input)[0],
            MISSING_FIELD,
            "qualification: missing; the row has 1 field, the header has 2",
        );
        assert_eq!(r.customer_id, A);
    }

    #[test]
    fn duplicates_of_valid_rows_are_rejected() {
        let input = format!(
            "customer_id,qualification,code\n{A},StateOwnedEntity,\n{A},GCC,\n{A},GCC,1\n{B},StateOwnedEntity,\n{},state owned entity,\n{A},GCC,2\n{A},Education,\n",
            A.to_uppercase()
        );
        let mut reader = InputReader::new(input.as_bytes(), opts()).expect("header");
        let records: Vec<Record> = reader.by_ref().map(|r| r.expect("read")).collect();
        as_valid(&records[0]);
        // An invalid row does not enter the index.
        assert_invalid(&records[1], MISSING_VALIDATION_CODE, "validation_code:");
        as_valid(&records[2]);
        as_valid(&records[3]);
        let dup = as_rejected(&records[4]);
        assert_eq!(dup.outcome, Some(Outcome::Duplicate));
        assert_eq!(dup.error_code.as_deref(), Some(DUPLICATE));
        assert_eq!(
            dup.error_message.as_deref(),
            Some("same customer and qualification as row 1")
        );
        assert_eq!(
            (
                dup.row,
                dup.customer_id.as_str(),
                dup.qualification.as_str()
            ),
            (5, A, "StateOwnedEntity")
        );
        assert_eq!(dup.attempts, 0);
        let dup = as_rejected(&records[5]);
        assert_eq!(
            dup.error_message.as_deref(),
            Some("same customer and qualification as row 3")
        );
        // Education for A without segment: invalid, not a duplicate.
        assert_invalid(&records[6], MISSING_EDUCATION_SEGMENT, "education_segment:");
        // The index holds the first valid row of each pair, and nothing of the invalid rows.
        let id = |text: &str| CustomerId::parse(text).expect("GUID").as_u128();
        for (customer, q, first) in [
            (A, Qualification::StateOwnedEntity, Some(1)),
            (A, Qualification::GovernmentCommunityCloud, Some(3)),
            (B, Qualification::StateOwnedEntity, Some(4)),
            (A, Qualification::Education, None),
        ] {
            assert_eq!(reader.seen.first_row((id(customer), q.index())), first);
        }
    }

    #[test]
    fn malformed_quoting_yields_one_record_per_record() {
        let input = format!(
            "customer_id,qualification\n\"{A}\"x,StateOwnedEntity\n{A},\"State\"Owned\"Entity\"\n\"{B}\",\"StateOwnedEntity\"\n\"unterminated,Education\n{B},Education\n"
        );
        let records = read_str(&input);
        // The unterminated quote swallows the rest of the file into one field.
        assert_eq!(records.len(), 4);
        assert_invalid(&records[0], INVALID_CUSTOMER_ID, "customer_id:");
        as_valid(&records[2]);
        let r = assert_invalid(
            &records[3],
            INVALID_CUSTOMER_ID,
            "customer_id: not a GUID: unterminated,Education\\n",
        );
        assert!(r.customer_id.ends_with(",Education"), "{r:?}");
    }

    /// Yields its data in small pieces, interrupting every other read, then optionally fails.
    struct Awkward {
        data: Vec<u8>,
        at: usize,
        interrupt: bool,
        fail_at_end: bool,
    }

    impl Read for Awkward {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "signal"));
            }
            if self.at == self.data.len() {
                return if self.fail_at_end {
                    Err(io::Error::other("disk gone"))
                } else {
                    Ok(0)
                };
            }
            let n = buf.len().min(2).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn awkward(data: &str, fail_at_end: bool) -> Awkward {
        Awkward {
            data: data.as_bytes().to_vec(),
            at: 0,
            interrupt: false,
            fail_at_end,
        }
    }

    #[test]
    fn interrupted_and_split_reads_are_retried() {
        let input = format!("\u{feff}customer_id,qualification\r\n{A},StateOwnedEntity\r\n\r\n{B},StateOwnedEntity\r\n");
        let reader = InputReader::new(awkward(&input, false), opts()).expect("header");
        let records: Vec<Record> = reader.map(|r| r.expect("read")).collect();
        assert_eq!(records.len(), 2);
        assert_eq!(as_valid(&records[1]).index, 2);
        assert_eq!(count_records(awkward(&input, false)).expect("count"), 2);
    }

    #[test]
    fn a_read_failure_is_an_error_and_ends_the_reader() {
        let input =
            format!("customer_id,qualification\n{A},StateOwnedEntity\n{B},StateOwnedEntity");
        let mut reader = InputReader::new(awkward(&input, true), opts()).expect("header");
        as_valid(&reader.next_record().expect("first").expect("read"));
        let e = reader
            .next_record()
            .expect("an error")
            .expect_err("read failure");
        assert!(matches!(e, InputError::Io(_)));
        assert_eq!(e.to_string(), "read failed: disk gone");
        assert!(reader.next_record().is_none());
        assert!(reader.next_record().is_none());
        assert!(count_records(awkward(&input, true)).is_err());
        let e = header_error_of(awkward("customer_id,qual", true));
        assert!(matches!(e, InputError::Io(_)), "{e}");
    }

    /// A panic in the workbook reader thread (calamine's, on a damaged sheet) was taken for the
    /// end of the sheet: the rows after it got no results row, and the run could exit 0.
    #[test]
    fn a_panic_in_the_workbook_reader_is_a_read_error_not_the_end_of_the_sheet() {
        let rows = sheet::SheetRows::spawn("Schools".into(), |tx| {
            let header = ["customer_id", "qualification"];
            for (row, cells) in [(1, header), (2, [A, "StateOwnedEntity"])] {
                let cells = cells.map(str::to_string).to_vec();
                tx.send(Ok((row, cells))).expect("the reader is there");
            }
            panic!("calamine: index out of bounds");
        });
        let feed = Feed::Sheet(rows.expect("reader thread"));
        let format = Format::Workbook {
            kind: sheet::WorkbookKind::Xlsx,
            sheet: "Schools".into(),
        };
        let source = Source::<&[u8]>::with_feed(feed, MAX_RECORD_BYTES);
        let mut reader = InputReader::start(source, &format, opts()).expect("header");
        as_valid(&reader.next_record().expect("first").expect("read"));
        let e = reader
            .next_record()
            .expect("an error, not the end")
            .expect_err("the panic");
        assert!(matches!(e, InputError::Io(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "read failed: sheet \"Schools\": the workbook reader failed part-way: calamine: index out of bounds"
        );
        assert!(reader.next_record().is_none());
    }

    fn header_error_of<R: Read>(reader: R) -> InputError {
        match InputReader::new(reader, opts()) {
            Ok(_) => panic!("expected a header error"),
            Err(e) => e,
        }
    }

    fn csv_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            3 => prop::sample::select(vec![b',', b'"', b'\n', b'\r', b' ', b'\t', b'a', b'1', b'-', 0xef, 0xbb, 0xbf, 0xff, 0xc3]),
            1 => any::<u8>(),
        ]
    }

    fn quoted(cell: &str) -> String {
        format!("\"{}\"", cell.replace('"', "\"\""))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic_and_match_the_count(
            body in prop::collection::vec(csv_byte(), 0..600),
            segment in prop::option::of(prop::sample::select(vec![EducationSegment::K12, EducationSegment::HigherEducation])),
            v2021 in any::<bool>(),
        ) {
            let mut input = HEADER.as_bytes().to_vec();
            input.extend_from_slice(&body);
            let o = InputOptions {
                contract: if v2021 { ApiContract::V2021 } else { ApiContract::V2022 },
                default_segment: segment,
                default_validation_code: Some("7".into()),
            };
            let mut reader = InputReader::new(&input[..], o).expect("header");
            let mut n = 0u64;
            let mut not_utf8 = false;
            while let Some(record) = reader.next_record() {
                let record = match record {
                    Err(InputError::NotUtf8 { .. }) => {
                        not_utf8 = true;
                        prop_assert!(reader.next_record().is_none());
                        break;
                    }
                    other => other.expect("no I/O error"),
                };
                n += 1;
                let index = match record {
                    Record::Valid(row) => row.index,
                    Record::Rejected(r) => r.row,
                };
                prop_assert_eq!(index, n);
            }
            // The counter agrees: the same records, or the same refusal.
            match count_records(&input[..]) {
                Ok(count) => prop_assert!(!not_utf8 && count == n),
                Err(e) => prop_assert!(not_utf8 && e.kind() == io::ErrorKind::InvalidData),
            }
        }

        #[test]
        fn well_formed_csv_yields_one_record_per_non_blank_line(
            rows in prop::collection::vec(
                (
                    prop::collection::vec("[ a-zA-Z0-9,\"\r\n\u{e9}-]{0,10}", 1..6)
                        .prop_filter("not blank", |cells| cells.iter().any(|c| !c.trim().is_empty())),
                    any::<bool>(),
                    prop::sample::select(vec!["", "\n", "  \n", ",,\n", "\r\n"]),
                ),
                0..40,
            ),
            crlf in any::<bool>(),
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut input = format!("customer_id,qualification,code,segment{end}");
            for (cells, quote_all, blank) in &rows {
                let line: Vec<String> = cells
                    .iter()
                    .map(|c| {
                        if *quote_all || c.contains([',', '"', '\r', '\n']) { quoted(c) } else { c.clone() }
                    })
                    .collect();
                input.push_str(&line.join(","));
                input.push_str(end);
                input.push_str(blank);
            }
            let records = read_all(input.as_bytes(), opts());
            prop_assert_eq!(records.len(), rows.len());
            for (i, record) in records.iter().enumerate() {
                let index = match record {
                    Record::Valid(row) => row.index,
                    Record::Rejected(r) => r.row,
                };
                prop_assert_eq!(index, i as u64 + 1);
            }
        }

        #[test]
        fn generated_rows_validate_like_a_model(
            rows in prop::collection::vec((0usize..3, 0usize..4, any::<bool>()), 0..30),
        ) {
            let ids = [A, B, "not-a-guid"];
            let quals = ["Education", "GCC", "StateOwnedEntity", "Nonprofit"];
            let mut input = String::from("customer_id,qualification,segment,code\n");
            for (id, q, upper) in &rows {
                let id = if *upper { ids[*id].to_uppercase() } else { ids[*id].to_owned() };
                input.push_str(&format!("{id},{},K12,1\n", quals[*q]));
            }
            let records = read_all(input.as_bytes(), opts());
            let mut first_seen = std::collections::HashMap::new();
            for (i, ((id, q, _), record)) in rows.iter().zip(&records).enumerate() {
                let index = i as u64 + 1;
                if *id == 2 || *q == 3 {
                    prop_assert_eq!(as_rejected(record).outcome, Some(Outcome::Invalid));
                } else if let Some(first) = first_seen.get(&(*id, *q)) {
                    let r = as_rejected(record);
                    prop_assert_eq!(r.outcome, Some(Outcome::Duplicate));
                    prop_assert_eq!(r.error_message.clone(), Some(format!("same customer and qualification as row {first}")));
                } else {
                    first_seen.insert((*id, *q), index);
                    prop_assert_eq!(as_valid(record).index, index);
                }
            }
        }
    }
}
