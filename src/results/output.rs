//! The results file: one CSV row per input row, in the documented column order, written as rows
//! finish and safe to open in a spreadsheet.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::domain::model::{Outcome, ResultRow, RESULT_COLUMNS};
use crate::results::ResultsError;

/// Where results go: a file, or standard output for `-`.
pub enum Sink {
    /// A results file.
    File(BufWriter<File>),
    /// `--output -`.
    Stdout(BufWriter<io::Stdout>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(w) => w.write(buf),
            Sink::Stdout(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::File(w) => w.write_all(buf),
            Sink::Stdout(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(w) => w.flush(),
            Sink::Stdout(w) => w.flush(),
        }
    }
}

/// Checks, before anything is sent, that `path` can be created: its folder exists and, unless
/// `force`, no file is there yet.
pub fn check_target(path: &str, force: bool) -> Result<(), ResultsError> {
    if path == "-" {
        return Ok(());
    }
    let err = |reason: String| ResultsError::Output {
        path: path.to_string(),
        reason,
    };
    let target = Path::new(path);
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(err(format!("{} is not a directory", dir.display()))),
        Err(source) => {
            return Err(ResultsError::OutputDir {
                path: path.to_string(),
                dir: dir.display().to_string(),
                source,
            })
        }
    }
    match std::fs::metadata(target) {
        Ok(meta) if meta.is_dir() => Err(err("is a directory".into())),
        Ok(_) if !force => Err(err(
            "already exists; pass --force to overwrite it, or --resume to continue it".into(),
        )),
        _ => Ok(()),
    }
}

/// Opens the results sink for a new run (`create_new` unless `force`, so a file is never clobbered).
pub fn create(path: &str, force: bool) -> Result<Sink, ResultsError> {
    if path == "-" {
        return Ok(Sink::Stdout(BufWriter::new(io::stdout())));
    }
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            ResultsError::Output {
                path: path.to_string(),
                reason: "already exists; pass --force to overwrite it, or --resume to continue it"
                    .into(),
            }
        } else {
            ResultsError::OutputIo {
                path: path.to_string(),
                source: e,
            }
        }
    })?;
    Ok(Sink::File(BufWriter::with_capacity(64 * 1024, file)))
}

/// Writes result rows as CSV; the caller decides when to flush.
pub struct ResultsWriter<W: Write> {
    csv: csv::Writer<W>,
    record: csv::ByteRecord,
}

impl<W: Write> ResultsWriter<W> {
    /// A writer that starts with the header row.
    pub fn with_header(inner: W) -> io::Result<Self> {
        let mut writer = Self::without_header(inner);
        writer.csv.write_record(RESULT_COLUMNS)?;
        Ok(writer)
    }

    /// A writer that appends rows to a file that already has its header.
    pub fn without_header(inner: W) -> Self {
        ResultsWriter {
            // The csv crate's own buffer is kept tiny: the sink already buffers, and a flush must
            // reach the file, not stop in an inner buffer.
            csv: csv::WriterBuilder::new()
                .buffer_capacity(256)
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(inner),
            record: csv::ByteRecord::new(),
        }
    }

    /// Writes one row (buffered).
    pub fn write(&mut self, row: &ResultRow) -> io::Result<()> {
        let record = &mut self.record;
        let number = |record: &mut csv::ByteRecord, value: Option<u64>| match value {
            Some(v) => record.push_field(itoa::Buffer::new().format(v).as_bytes()),
            None => record.push_field(b""),
        };
        record.clear();
        number(record, Some(row.row));
        push_text(record, &row.customer_id);
        push_text(record, &row.qualification);
        push_text(record, row.outcome.map_or("", |o| o.as_str()));
        number(record, row.http_status.map(u64::from));
        push_text(record, row.vetting_status.as_deref().unwrap_or(""));
        push_text(record, row.vetting_reason.as_deref().unwrap_or(""));
        push_text(record, row.vetting_create_date.as_deref().unwrap_or(""));
        number(record, Some(u64::from(row.attempts)));
        push_uuid(record, row.correlation_id);
        push_uuid(record, row.request_id);
        push_text(record, row.error_code.as_deref().unwrap_or(""));
        push_text(record, row.error_message.as_deref().unwrap_or(""));
        number(record, Some(row.elapsed_ms));
        self.csv.write_byte_record(record).map_err(csv_to_io)
    }

    /// Pushes everything written so far to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.csv.flush()
    }
}

impl ResultsWriter<Sink> {
    /// Flushes and, for a regular file, syncs it to disk (proof that the disk takes the rows).
    pub fn sync(&mut self) -> io::Result<()> {
        self.csv.flush()?;
        if let Sink::File(file) = self.csv.get_ref() {
            let file = file.get_ref();
            if file.metadata()?.is_file() {
                file.sync_all()?;
            }
        }
        Ok(())
    }
}

/// Why an earlier results file could not be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The first line is not the results header.
    #[error("not a pc-qualify results file (its first line is not the results header)")]
    NotResults,
    /// A complete line does not hold a results row.
    #[error("line {line}")]
    BadRow {
        /// 1-based line number in the file.
        line: u64,
        /// What is wrong with it.
        #[source]
        source: ResultsRowError,
    },
}

/// Why one line of a results file is not a results row; names the field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultsRowError {
    /// The CSV layer could not read the record (bad quoting, for example).
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// The record has the wrong number of fields.
    #[error("has {found} fields, a results row has {expected}")]
    FieldCount {
        /// Fields in the record.
        found: usize,
        /// Fields in a results row.
        expected: usize,
    },
    /// The `row` field is empty.
    #[error("row is empty")]
    EmptyRow,
    /// A numeric field holds something else.
    #[error("{field} is not a number: {value:?}")]
    NotANumber {
        /// The column.
        field: &'static str,
        /// The cell.
        value: String,
    },
    /// A number does not fit its field.
    #[error("{field} out of range: {value}")]
    OutOfRange {
        /// The column.
        field: &'static str,
        /// The number.
        value: u64,
    },
    /// An id field is not a UUID.
    #[error("{field} is not a UUID: {value:?}")]
    NotAUuid {
        /// The column.
        field: &'static str,
        /// The cell.
        value: String,
    },
    /// The `outcome` field names no known outcome.
    #[error("unknown outcome {value:?}")]
    UnknownOutcome {
        /// The cell.
        value: String,
    },
}

/// Reads an earlier results file row by row, dropping a torn last line (one without its newline,
/// as a killed writer leaves it).
pub struct ResultsReader {
    csv: csv::Reader<Box<dyn io::Read + Send>>,
    record: csv::ByteRecord,
    line: u64,
}

impl ResultsReader {
    /// Streams `path` (memory does not grow with the file) and checks its header.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        use std::io::Read as _;
        let mut file = File::open(path)?;
        let complete = complete_len(&mut file)?;
        Self::from_reader(Box::new(io::BufReader::new(file).take(complete)))
    }

    /// Reads results held in memory; a torn last line is dropped.
    pub fn from_bytes(mut bytes: Vec<u8>) -> Result<Self, ReadError> {
        match bytes.iter().rposition(|b| *b == b'\n') {
            Some(end) => bytes.truncate(end + 1),
            None => bytes.clear(),
        }
        Self::from_reader(Box::new(io::Cursor::new(bytes)))
    }

    fn from_reader(reader: Box<dyn io::Read + Send>) -> Result<Self, ReadError> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(reader);
        let mut record = csv::ByteRecord::new();
        let header_ok = csv.read_byte_record(&mut record).unwrap_or(false)
            && record
                .iter()
                .eq(RESULT_COLUMNS.iter().map(|c| c.as_bytes()));
        if !header_ok {
            return Err(ReadError::NotResults);
        }
        Ok(ResultsReader {
            csv,
            record,
            line: 1,
        })
    }

    /// The next row, with the raw record it came from (to copy it verbatim), or `None` at the end.
    pub fn next_row(&mut self) -> Option<Result<(ResultRow, &csv::ByteRecord), ReadError>> {
        match self.csv.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                self.line = self.record.position().map_or(self.line + 1, |p| p.line());
                Some(
                    parse_row(&self.record)
                        .map(|row| (row, &self.record))
                        .map_err(|source| ReadError::BadRow {
                            line: self.line,
                            source,
                        }),
                )
            }
            Err(err) => Some(Err(ReadError::BadRow {
                line: self.line + 1,
                source: err.into(),
            })),
        }
    }
}

/// The length of `file` up to and including its last newline (everything after it is a line a
/// killed writer tore), leaving the file positioned at its start. Shared with `export --resume`.
pub(crate) fn complete_len(file: &mut File) -> io::Result<u64> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let len = file.metadata()?.len();
    // Find the last newline from the end.
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    let complete = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(i) = chunk[..n].iter().rposition(|b| *b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    file.seek(SeekFrom::Start(0))?;
    Ok(complete)
}

/// Turns one results record back into a [`ResultRow`], undoing the spreadsheet apostrophe.
fn parse_row(record: &csv::ByteRecord) -> Result<ResultRow, ResultsRowError> {
    if record.len() != RESULT_COLUMNS.len() {
        return Err(ResultsRowError::FieldCount {
            found: record.len(),
            expected: RESULT_COLUMNS.len(),
        });
    }
    let text = |i: usize| -> String {
        let cell = String::from_utf8_lossy(&record[i]);
        match cell.strip_prefix('\'') {
            Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest.to_string(),
            _ => cell.into_owned(),
        }
    };
    let opt = |i: usize| Some(text(i)).filter(|t| !t.is_empty());
    let number = |i: usize, field: &'static str| -> Result<Option<u64>, ResultsRowError> {
        let t = text(i);
        if t.is_empty() {
            return Ok(None);
        }
        t.parse()
            .map(Some)
            .map_err(|_| ResultsRowError::NotANumber { field, value: t })
    };
    let uuid = |i: usize, field: &'static str| -> Result<Option<uuid::Uuid>, ResultsRowError> {
        match opt(i) {
            None => Ok(None),
            Some(t) => uuid::Uuid::parse_str(&t)
                .map(Some)
                .map_err(|_| ResultsRowError::NotAUuid { field, value: t }),
        }
    };
    let row = number(0, "row")?.ok_or(ResultsRowError::EmptyRow)?;
    let outcome_text = text(3);
    let outcome = Outcome::parse(&outcome_text).ok_or(ResultsRowError::UnknownOutcome {
        value: outcome_text,
    })?;
    Ok(ResultRow {
        row,
        customer_id: text(1),
        qualification: text(2),
        outcome: Some(outcome),
        http_status: number(4, "http_status")?
            .map(|value| {
                u16::try_from(value).map_err(|_| ResultsRowError::OutOfRange {
                    field: "http_status",
                    value,
                })
            })
            .transpose()?,
        vetting_status: opt(5),
        vetting_reason: opt(6),
        vetting_create_date: opt(7),
        attempts: number(8, "attempts")?
            .map(|a| u32::try_from(a).unwrap_or(u32::MAX))
            .unwrap_or(0),
        correlation_id: uuid(9, "correlation_id")?,
        request_id: uuid(10, "request_id")?,
        error_code: opt(11),
        error_message: opt(12),
        elapsed_ms: number(13, "elapsed_ms")?.unwrap_or(0),
    })
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

/// Pushes a text cell, defused for spreadsheets: a leading `=`, `+`, `-`, `@`, tab or CR would
/// make Excel evaluate the cell, so such cells get a leading apostrophe. Shared with `export`.
pub(crate) fn push_text(record: &mut csv::ByteRecord, text: &str) {
    if has_control(text) {
        // NUL and other control characters (service text, odd input) have no place in a cell:
        // they break spreadsheets and line-based tools. Removed, then defused as usual.
        let clean: String = text.chars().filter(|c| !c.is_control()).collect();
        return push_clean_text(record, &clean);
    }
    push_clean_text(record, text)
}

/// Whether `text` holds a control character (C0, DEL or C1).
fn has_control(text: &str) -> bool {
    text.bytes().any(|b| b < 0x20 || b == 0x7f)
        || (!text.is_ascii() && text.chars().any(char::is_control))
}

fn push_clean_text(record: &mut csv::ByteRecord, text: &str) {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        let mut cell = String::with_capacity(text.len() + 1);
        cell.push('\'');
        cell.push_str(text);
        record.push_field(cell.as_bytes());
    } else {
        record.push_field(text.as_bytes());
    }
}

pub(crate) fn csv_to_io(err: csv::Error) -> io::Error {
    match err.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::ChainExt;

    #[test]
    fn a_missing_results_folder_keeps_the_io_error() {
        use std::error::Error as _;
        let dir = tempfile::tempdir().expect("dir");
        let folder = dir.path().join("absent");
        let target = folder.join("out.csv");
        let err = check_target(&target.to_string_lossy(), false).expect_err("no folder");
        assert!(matches!(err, ResultsError::OutputDir { .. }), "{err:?}");
        let io = std::fs::metadata(&folder).expect_err("absent");
        assert_eq!(err.source().map(ToString::to_string), Some(io.to_string()));
        assert_eq!(
            err.chain(),
            format!(
                "output {}: directory {}: {io}",
                target.display(),
                folder.display()
            )
        );
    }

    #[test]
    fn control_characters_are_removed_from_cells() {
        let mut writer = ResultsWriter::with_header(Vec::new()).expect("header");
        let row = ResultRow {
            row: 1,
            customer_id: "ab\0cd\u{7}".into(),
            qualification: "\u{1b}=Education".into(),
            outcome: Some(Outcome::Failed),
            error_message: Some("line\nbreak\u{85} and \u{7f}del".into()),
            ..ResultRow::default()
        };
        writer.write(&row).expect("write");
        writer.flush().expect("flush");
        let text = String::from_utf8(writer.csv.into_inner().expect("inner")).expect("utf8");
        let line = text.lines().nth(1).expect("row");
        assert_eq!(
            line,
            "1,abcd,'=Education,failed,,,,,0,,,,linebreak and del,0"
        );
    }

    #[test]
    fn rows_come_out_in_column_order_and_defused() {
        let mut writer = ResultsWriter::with_header(Vec::new()).expect("header");
        let row = ResultRow {
            row: 3,
            customer_id: "=HYPERLINK(\"x\")".into(),
            qualification: "Education".into(),
            outcome: Some(Outcome::Invalid),
            http_status: None,
            error_code: Some("invalid_customer_id".into()),
            error_message: Some("-bad, \"quoted\"".into()),
            ..ResultRow::default()
        };
        writer.write(&row).expect("write");
        writer.flush().expect("flush");
        let text = String::from_utf8(writer.csv.into_inner().expect("inner")).expect("utf8");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(RESULT_COLUMNS.join(",").as_str()));
        assert_eq!(
            lines.next(),
            Some(
                "3,\"'=HYPERLINK(\"\"x\"\")\",Education,invalid,,,,,0,,,invalid_customer_id,\"'-bad, \"\"quoted\"\"\",0"
            )
        );
        // Read back, the row is what was written, and a torn last line is dropped.
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"4,abc,Educ");
        let mut reader = ResultsReader::from_bytes(bytes).expect("header");
        let (back, _) = reader.next_row().expect("a row").expect("parses");
        assert_eq!(back, row);
        assert!(reader.next_row().is_none());
        assert!(matches!(
            ResultsReader::from_bytes(b"a,b\n".to_vec()),
            Err(ReadError::NotResults)
        ));
    }
}
