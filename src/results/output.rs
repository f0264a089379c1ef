//! The results file: one CSV row per input row, in the documented column order, written as rows
//! finish and safe to open in a spreadsheet.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::marker::PhantomData;
use std::path::Path;

pub(crate) use crate::input::csv_to_io;

use crate::domain::atomic::Replacement;
use crate::domain::model::ResultRow;
use crate::results::schema::{HeaderError, Layout};
use crate::results::ResultsError;

/// Where results go: a file, or standard output for `-`.
pub enum Sink {
    /// A results file.
    File(BufWriter<File>),
    /// `--output -`.
    Stdout(BufWriter<io::Stdout>),
    /// A results file replaced only once every row is in ([`replacing`], [`Sink::commit`]).
    Replacing(Replacing),
}

/// A results file being replaced: the new contents, and whether they may overwrite a file.
pub struct Replacing(BufWriter<Replacement>, bool);

impl Sink {
    /// Puts a replacement in place of its file (see [`replacing`]); flushes the others.
    pub fn commit(mut self) -> io::Result<()> {
        match self {
            Sink::Replacing(Replacing(w, overwrite)) => w.into_inner()?.commit(overwrite),
            _ => self.flush(),
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::File(w) => w,
            Sink::Stdout(w) => w,
            Sink::Replacing(Replacing(w, _)) => w,
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

/// A results file's write buffer: rows are small and many, so a large buffer saves syscalls.
const BUFFER: usize = 64 * 1024;

/// Why an existing results file is not written.
const EXISTS: &str = "already exists; pass --force to overwrite it, or --resume to continue it";

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
        Ok(_) if !force => Err(err(EXISTS.into())),
        _ => Ok(()),
    }
}

/// Opens the results sink for a new run (`create_new` unless `force`, so a file is never clobbered).
pub fn create(path: &str, force: bool) -> Result<Sink, ResultsError> {
    if path == "-" {
        return Ok(Sink::Stdout(BufWriter::new(io::stdout())));
    }
    let opened = OpenOptions::new()
        .write(true)
        .create(force)
        .truncate(force)
        .create_new(!force)
        .open(path);
    let file = opened.map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => ResultsError::Output {
            path: path.to_string(),
            reason: EXISTS.into(),
        },
        _ => ResultsError::output_io(path, e),
    })?;
    Ok(Sink::File(BufWriter::with_capacity(BUFFER, file)))
}

/// Opens the results file `path` to add rows after those already in it (`--resume`).
pub fn append(path: &str) -> Result<Sink, ResultsError> {
    let file = OpenOptions::new().append(true).open(path);
    let file = file.map_err(|e| ResultsError::output_io(path, e))?;
    Ok(Sink::File(BufWriter::with_capacity(BUFFER, file)))
}

/// As [`create`], for a job that writes its whole results in one go (refresh): the rows go to a
/// temporary file beside `path`, which replaces it only at [`Sink::commit`], so a job that fails
/// or is stopped half-way leaves the earlier file byte for byte (and no new one). Through a
/// symlink the file it points to is replaced, with its mode; a device or FIFO is written as is.
pub fn replacing(path: &str, force: bool) -> Result<Sink, ResultsError> {
    if path == "-" || !crate::results::lock::is_lockable(Path::new(path)) {
        return create(path, force);
    }
    let real = crate::results::lock::resolve(Path::new(path));
    // A new file gets what `create` would give it: 0666 less the umask.
    let replacement = Replacement::new(&real, file_mode(&real, 0o666)).map_err(|source| {
        ResultsError::OutputIo {
            path: path.to_string(),
            source,
        }
    })?;
    Ok(Sink::Replacing(Replacing(
        BufWriter::with_capacity(BUFFER, replacement),
        force,
    )))
}

/// `path`'s permission bits, or `missing` when it has none (absent, or not on Unix).
fn file_mode(path: &Path, missing: u32) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            return meta.permissions().mode() & 0o7777;
        }
    }
    // Windows has no mode bits: the replacement takes the folder's access rules.
    #[cfg(not(unix))]
    let _ = path;
    missing
}

/// A row of a CSV file the tool writes (results, export): its header, and its cells in order.
pub trait CsvRow {
    /// The header's names, in order.
    fn header() -> impl Iterator<Item = &'static str>;
    /// Pushes the row's cells into the cleared `record`, text defused with [`push_text`].
    fn push_cells(&self, record: &mut csv::ByteRecord);
}

/// Writes rows as CSV; the caller decides when to flush.
pub struct CsvWriter<W: Write, R> {
    csv: csv::Writer<W>,
    record: csv::ByteRecord,
    rows: PhantomData<fn(&R)>,
}

/// The results file's writer.
pub type ResultsWriter<W> = CsvWriter<W, ResultRow>;

impl<W: Write, R: CsvRow> CsvWriter<W, R> {
    /// A writer that starts with the header row.
    pub fn with_header(inner: W) -> io::Result<Self> {
        let mut writer = Self::without_header(inner);
        writer.csv.write_record(R::header()).map_err(csv_to_io)?;
        Ok(writer)
    }

    /// A writer that appends rows to a file that already has its header.
    pub fn without_header(inner: W) -> Self {
        CsvWriter {
            // The csv crate's own buffer is kept tiny: the sink already buffers, and a flush must
            // reach the file, not stop in an inner buffer.
            csv: csv::WriterBuilder::new()
                .buffer_capacity(256)
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(inner),
            record: csv::ByteRecord::new(),
            rows: PhantomData,
        }
    }

    /// Writes one row (buffered).
    pub fn write(&mut self, row: &R) -> io::Result<()> {
        self.record.clear();
        row.push_cells(&mut self.record);
        self.csv.write_byte_record(&self.record).map_err(csv_to_io)
    }

    /// Copies a row read back from an earlier file of the same kind (its cells already defused).
    pub(crate) fn write_raw(&mut self, record: &csv::ByteRecord) -> io::Result<()> {
        self.csv.write_byte_record(record).map_err(csv_to_io)
    }

    /// Pushes everything written so far to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.csv.flush()
    }

    /// The sink, with everything written pushed to it.
    pub fn into_inner(self) -> io::Result<W> {
        self.csv.into_inner().map_err(|e| e.into_error())
    }
}

/// Rewrites the CSV file `path` whole and atomically, keeping its mode: `copy` writes the rows
/// after the header and closes what it read of `path` (Windows refuses to rename over it).
pub(crate) fn rewrite<R: CsvRow, T>(
    path: &Path,
    copy: impl FnOnce(&mut CsvWriter<BufWriter<&mut File>, R>) -> io::Result<T>,
) -> io::Result<T> {
    crate::domain::atomic::replace(path, file_mode(path, 0o644), |file| {
        let mut writer = CsvWriter::with_header(BufWriter::new(file))?;
        let value = copy(&mut writer)?;
        writer.flush()?;
        Ok(value)
    })
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
    /// The file has no header line (it is empty, or its first line is longer than any header).
    #[error("not a pc-qualify results file (no results header on its first line)")]
    NotResults,
    /// No separator (`,`, `;`, tab or `|`) stands between the header's names.
    #[error("not a pc-qualify results file (no `,`, `;` or tab separates the names in its first line: {header:?})")]
    Separator {
        /// The first line, as read.
        header: String,
    },
    /// The header lacks a column every reader needs.
    #[error(
        "not a pc-qualify results file (column `{column}` is missing; the header has: {header})"
    )]
    MissingColumn {
        /// The missing column.
        column: &'static str,
        /// The header's names, as read.
        header: String,
    },
    /// The header names a column twice.
    #[error("column `{column}` appears twice in the header")]
    ColumnTwice {
        /// The column.
        column: &'static str,
    },
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

/// The longest header line read: a results header is some 200 bytes, and the bound keeps a file
/// that is not one (a single huge line) from being read whole in search of its end.
const MAX_HEADER: u64 = 64 * 1024;

/// The longest last line without a newline that is read as a row: the tool's rows are under
/// 2 KiB (service text is cut to 300 characters).
const MAX_LINE: u64 = 64 * 1024;

/// The most a row may take, read-ahead included: far past any row the tool writes or a
/// spreadsheet makes of one.
const MAX_RECORD: u64 = 1024 * 1024;

/// Reads an earlier results file row by row. A last line without its newline is kept when it
/// is a whole row (a spreadsheet or script may save a file without a final line end; dropping
/// that row made `report` miss it and `--resume` post it again), and dropped as torn otherwise
/// (what a killed writer leaves: too few cells, or a cell that does not read). Even a torn row
/// of the tool's own that reads whole is true to what happened: a row is written only after its
/// call ended. Columns are found by their header names (see
/// [`crate::results::schema::COLUMNS`]), and what a spreadsheet does to a file it saves is taken: a `;` or tab
/// separator (seen in the header line), a UTF-8 byte-order mark, CRLF line ends, quoting, moved
/// columns, and columns of its own (ignored).
pub struct ResultsReader {
    csv: csv::Reader<LineFeeds>,
    record: csv::ByteRecord,
    layout: Layout,
    line: u64,
    /// The last line of the record read before (the header's at first).
    last_line: u64,
    /// Where the bytes after the file's last newline start, as the csv reader counts them.
    tail_from: u64,
}

/// The results file as the csv reader reads it, noting where the line feeds read so far are
/// (byte offsets; those before the last row handed out are dropped, so it holds a buffer's worth
/// at most). The csv reader starts a record's position where the previous record stopped, before
/// the LF of a CRLF and before blank lines, so a spreadsheet's CRLF file would name the first row
/// "line 1"; a row's line is told from its end.
struct LineFeeds {
    inner: Box<dyn io::Read + Send>,
    /// Bytes read so far: the offset of `buf[0]` in the next read.
    at: u64,
    feeds: VecDeque<u64>,
    /// Bytes read since the last record ended: an unclosed quote would otherwise read the rest
    /// of the file into one record.
    since_record: u64,
}

impl LineFeeds {
    /// Whether the byte at `offset` is a line feed; forgets the ones before it.
    fn ends_at(&mut self, offset: u64) -> bool {
        while self.feeds.front().is_some_and(|&at| at < offset) {
            self.feeds.pop_front();
        }
        self.feeds.front() == Some(&offset)
    }
}

impl io::Read for LineFeeds {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = buf.get(..n).unwrap_or_default();
        for (offset, _) in read.iter().enumerate().filter(|(_, b)| **b == b'\n') {
            let offset = u64::try_from(offset).unwrap_or(u64::MAX);
            self.feeds.push_back(self.at.saturating_add(offset));
        }
        let n64 = u64::try_from(n).unwrap_or(u64::MAX);
        self.at = self.at.saturating_add(n64);
        self.since_record = self.since_record.saturating_add(n64);
        if self.since_record > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no row ends within {MAX_RECORD} bytes (an unclosed quote?): not a results file as pc-qualify writes it"),
            ));
        }
        Ok(n)
    }
}

impl ResultsReader {
    /// Streams `path` (memory does not grow with the file) and maps its header.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        use std::io::Read as _;
        let mut file = File::open(path)?;
        let complete = complete_len(&mut file)?;
        let len = file.metadata()?.len();
        // A row has no business being longer than this: a last line past it is not read.
        let tail = len.saturating_sub(complete).min(MAX_LINE);
        Self::from_reader(io::BufReader::new(file).take(complete + tail), complete)
    }

    /// A reader of `reader`, whose bytes from `complete` on follow the last newline.
    fn from_reader(
        mut reader: impl io::BufRead + Send + 'static,
        complete: u64,
    ) -> Result<Self, ReadError> {
        use std::io::{BufRead as _, Read as _};
        let mut header = Vec::new();
        (&mut reader)
            .take(MAX_HEADER)
            .read_until(b'\n', &mut header)?;
        if !header.ends_with(b"\n") {
            return Err(ReadError::NotResults);
        }
        let mut tail_from = complete;
        if header.starts_with(b"\xef\xbb\xbf") {
            header.drain(..3);
            tail_from = tail_from.saturating_sub(3);
        }
        let delimiter = crate::input::source::detect_delimiter(&header);
        if !header.contains(&delimiter) {
            return Err(ReadError::Separator {
                header: String::from_utf8_lossy(header.trim_ascii_end()).into_owned(),
            });
        }
        // The header goes through the same CSV reader as the rows, so line numbers count it.
        let inner = Box::new(io::Cursor::new(header).chain(reader));
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(LineFeeds {
                inner,
                at: 0,
                feeds: VecDeque::new(),
                since_record: 0,
            });
        let mut record = csv::ByteRecord::new();
        if let Err(err) = csv.read_byte_record(&mut record) {
            return Err(ReadError::BadRow {
                line: 1,
                source: err.into(),
            });
        }
        let layout = Layout::from_header(&record).map_err(|err| match err {
            HeaderError::Missing(column) => ReadError::MissingColumn {
                column,
                header: record
                    .iter()
                    .map(|name| String::from_utf8_lossy(name.trim_ascii()))
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            HeaderError::Twice(column) => ReadError::ColumnTwice { column },
        })?;
        Ok(ResultsReader {
            csv,
            record,
            layout,
            line: 1,
            last_line: 1,
            tail_from,
        })
    }

    /// The next row, or `None` at the end. A line of empty cells (what a spreadsheet writes for a
    /// row someone emptied) is skipped.
    pub fn next_row(&mut self) -> Option<Result<ResultRow, ReadError>> {
        loop {
            let read = self.csv.read_byte_record(&mut self.record);
            // The csv reader reads ahead by a buffer at most; the bound is on what one record
            // (with that) may take.
            self.csv.get_mut().since_record = 0;
            match read {
                Ok(false) => return None,
                Ok(true) => {
                    self.line = self.record_line();
                    if self.record.iter().all(|cell| cell.trim_ascii().is_empty()) {
                        continue;
                    }
                    // A record that ends past the last newline is the line after it (the csv
                    // reader's start positions sit before the newline that ends the record before).
                    if self.csv.position().byte() > self.tail_from {
                        // After the last newline: a whole row, or a torn one (dropped).
                        return self.layout.read(&self.record).ok().map(Ok);
                    }
                    return Some(self.layout.read(&self.record).map_err(|source| {
                        ReadError::BadRow {
                            line: self.line,
                            source,
                        }
                    }));
                }
                Err(err) => {
                    return Some(Err(ReadError::BadRow {
                        line: self.line + 1,
                        source: err.into(),
                    }))
                }
            }
        }
    }

    /// The line the record just read starts on (the header is line 1): the csv reader counts
    /// every line feed it reads, so the record's last line is that count, less the record's own
    /// line feed (none after a CR); line feeds inside its quoted cells take it back to its first.
    /// It starts after the previous record's last line, whatever an unclosed quote did.
    fn record_line(&mut self) -> u64 {
        let end = self.csv.position().clone();
        let own = end
            .byte()
            .checked_sub(1)
            .is_some_and(|last| self.csv.get_mut().ends_at(last));
        let inside = self
            .record
            .as_slice()
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        let last = end.line().saturating_sub(u64::from(own));
        let first = last
            .saturating_sub(u64::try_from(inside).unwrap_or(u64::MAX))
            .max(self.last_line.saturating_add(1));
        self.last_line = last.max(first);
        first
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

/// Pushes a text cell, defused for spreadsheets: a leading `=`, `+`, `-`, `@`, tab or CR would
/// make Excel evaluate the cell, so such cells get a leading apostrophe. Shared with `export`.
pub(crate) fn push_text(record: &mut csv::ByteRecord, text: &str) {
    // NUL and other control characters (C0, DEL, C1: service text, odd input) have no place in a
    // cell: they break spreadsheets and line-based tools. Removed, then defused as usual.
    let has_control = text.bytes().any(|b| b < 0x20 || b == 0x7f)
        || (!text.is_ascii() && text.chars().any(char::is_control));
    let text: Cow<str> = match has_control {
        true => text.chars().filter(|c| !c.is_control()).collect(),
        false => text.into(),
    };
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        record.push_field(format!("'{text}").as_bytes());
    } else {
        record.push_field(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads results held in memory, as [`ResultsReader::open`] reads a file.
    fn from_bytes(bytes: Vec<u8>) -> Result<ResultsReader, ReadError> {
        let complete = bytes
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |end| end + 1);
        ResultsReader::from_reader(io::Cursor::new(bytes), complete as u64)
    }
    use crate::domain::error::ChainExt;
    use crate::domain::model::Outcome;

    /// Regression: a last row without its newline (a file saved by a tool that does not end it)
    /// was dropped as torn, so `report` counted one row fewer and `--resume` posted a created
    /// row again. A whole row is kept; a torn one (too few cells, a cell that does not read, an
    /// unclosed quote) is still dropped, with or without a byte-order mark and CRLF.
    #[test]
    fn a_whole_last_row_without_its_newline_is_read_and_a_torn_one_dropped() {
        let id = "aaaaaaaa-0000-4000-8000-000000000001";
        let outcomes = |text: String| -> Vec<String> {
            let reader = from_bytes(text.into_bytes()).expect("a results file");
            let mut reader = reader;
            std::iter::from_fn(|| reader.next_row())
                .map(|row| row.expect("reads").outcome.expect("an outcome").to_string())
                .collect()
        };
        for (bom, end) in [("", "\n"), ("\u{feff}", "\r\n")] {
            let head = format!(
                "{bom}row,customer_id,qualification,outcome,attempts{end}\
                 1,{id},Education,created,1{end}2,{id},StateOwnedEntity,failed,3"
            );
            assert_eq!(outcomes(format!("{head}{end}")), ["created", "failed"]);
            assert_eq!(outcomes(head.clone()), ["created", "failed"], "{head:?}");
            for torn in [",", "1", "2,{id}", "2,{id},StateOwnedEntity,\"fail"] {
                let text = format!("{head}{end}{}", torn.replace("{id}", id));
                assert_eq!(outcomes(text), ["created", "failed"], "torn {torn:?}");
            }
        }
    }

    /// Regression: an unclosed quote made one record of the rest of the file, read whole.
    #[test]
    fn an_unclosed_quote_fails_the_read_within_a_bound() {
        let mut text = b"row,customer_id,qualification,outcome\n1,\"".to_vec();
        text.extend(std::iter::repeat_n(b'x', 3 << 20));
        text.push(b'\n');
        let mut reader = from_bytes(text).expect("a results header");
        let err = reader.next_row().expect("an answer").expect_err("refused");
        assert!(
            err.chain().contains("no row ends within"),
            "{}",
            err.chain()
        );
    }

    /// Issue 22: a CRLF file (as spreadsheets save) named its first row "line 1", and blank
    /// lines before a row were not counted.
    #[test]
    fn a_bad_row_is_named_by_its_line_in_the_file() {
        let header = ResultRow::header().collect::<Vec<_>>().join(",");
        let good = format!("1,{},Education,created,201,,,,1,,,,,5", "a".repeat(8));
        let line_of = |text: String| {
            let mut reader = from_bytes(text.into_bytes()).expect("header");
            match std::iter::from_fn(|| reader.next_row()).find_map(Result::err) {
                Some(ReadError::BadRow { line, .. }) => line,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(line_of(format!("{header}\r\nbad\r\n")), 2);
        assert_eq!(
            line_of(format!("{header}\r\n{good}\r\n{good}\r\nbad\r\n")),
            4
        );
        assert_eq!(line_of(format!("{header}\n\n\r\n\nbad\n")), 5);
        let quoted = good.replace(",,5", ",\"two\r\nlines\",5");
        assert_eq!(line_of(format!("{header}\n{quoted}\n\"bad\n")), 4);
        // An unclosed quote runs to the end; it still starts after the header.
        assert_eq!(line_of(format!("{header}\n\"bad,\n")), 2);
    }

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
        assert_eq!(
            lines.next(),
            Some(ResultRow::header().collect::<Vec<_>>().join(",").as_str())
        );
        assert_eq!(
            lines.next(),
            Some(
                "3,\"'=HYPERLINK(\"\"x\"\")\",Education,invalid,,,,,0,,,invalid_customer_id,\"'-bad, \"\"quoted\"\"\",0"
            )
        );
        // Read back, the row is what was written, and a torn last line is dropped.
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"4,abc,Educ");
        let mut reader = from_bytes(bytes).expect("header");
        let back = reader.next_row().expect("a row").expect("parses");
        assert_eq!(back, row);
        assert!(reader.next_row().is_none());
        assert!(matches!(
            from_bytes(b"a,b\n".to_vec()),
            Err(ReadError::MissingColumn { column: "row", .. })
        ));
    }
}
