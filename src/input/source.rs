//! Opening the input once: whether it is CSV text or a workbook, its encoding and delimiter, and
//! a reader for every pass over it (the progress bar's count, the `--resume` check, the GCC
//! pre-flight count, the run itself), so that all of them see the same rows.
//!
//! A file is opened exactly once; each pass reads it through its own offset
//! ([`At`], positional reads), so passes never disturb one another and a file replaced under
//! the same name mid-run cannot mix two versions. Standard input can be read once: a run that
//! needs a second pass first copies it to an anonymous temporary file ([`InputSource::spool`]).
//! The encodings and delimiters read are those of docs/input-formats.md.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use crate::input::sheet::{self, WorkbookKind};
use crate::input::InputFileError;
use crate::input::{self, Feed, InputError, InputOptions, InputReader, Source};

/// Flags that say how to read the input (shared by `run`, `reconcile` and `validate`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InputFormat {
    /// Field separator of a CSV input: comma, semicolon, tab, pipe or one character
    /// [default: detected from the header line]
    #[arg(long, value_name = "SEP", value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
    /// Sheet of a workbook input (.xlsx, .xlsm, .xls, .ods) [default: the first sheet]
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,
    /// Longest row read, in bytes; a longer row is `invalid`, and a file in which no row ends
    /// within twice this is refused [default: 1048576]
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_record_bytes: Option<u32>,
}

/// A `--delimiter` value that names no usable separator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected comma, semicolon, tab, pipe or a single punctuation character; got {text:?}")]
pub struct DelimiterError {
    pub text: String,
}

/// Parses `--delimiter`: a name or a single ASCII character other than a quote or line break.
/// (clap takes any `Into<Box<dyn Error + Send + Sync>>` error from a value parser.)
pub fn parse_delimiter(text: &str) -> Result<u8, DelimiterError> {
    // Any other single character, `,` and a tab among them, stands for itself.
    let usable =
        |b: &u8| b.is_ascii() && !matches!(b, b'"' | b'\n' | b'\r') && !b.is_ascii_alphanumeric();
    match (text.to_ascii_lowercase().as_str(), text.as_bytes()) {
        ("comma", _) => Ok(b','),
        ("semicolon", _) => Ok(b';'),
        ("tab" | "\\t", _) => Ok(b'\t'),
        ("pipe", _) => Ok(b'|'),
        (_, [b]) if usable(b) => Ok(*b),
        _ => Err(DelimiterError {
            text: text.to_string(),
        }),
    }
}

/// The delimiters detection chooses from, in the order that breaks ties.
const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

/// The longest header line read for detection; a longer one is judged on its start.
const MAX_HEADER_SNIFF: usize = 1 << 20;

/// How text is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 without a byte-order mark.
    Utf8,
    /// UTF-8 with a byte-order mark (what Excel's "CSV UTF-8" writes).
    Utf8Bom,
    /// UTF-16 little-endian with a byte-order mark (Excel's "Unicode text").
    Utf16Le,
    /// UTF-16 big-endian with a byte-order mark.
    Utf16Be,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf8Bom => "UTF-8 with BOM",
            Encoding::Utf16Le => "UTF-16 LE",
            Encoding::Utf16Be => "UTF-16 BE",
        }
    }

    fn sniff(head: &[u8]) -> Encoding {
        match head {
            [0xef, 0xbb, 0xbf, ..] => Encoding::Utf8Bom,
            [0xff, 0xfe, ..] => Encoding::Utf16Le,
            [0xfe, 0xff, ..] => Encoding::Utf16Be,
            _ => Encoding::Utf8,
        }
    }
}

/// What the input turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Delimited text.
    Csv {
        encoding: Encoding,
        /// The field separator.
        delimiter: u8,
        /// Sniffed from the header line (rather than given with `--delimiter`).
        detected: bool,
    },
    /// A workbook, and the sheet read.
    Workbook { kind: WorkbookKind, sheet: String },
}

/// How a delimiter byte is named in messages.
pub(super) fn delimiter_name(delimiter: u8) -> String {
    match delimiter {
        b',' => "',' (comma)".into(),
        b';' => "';' (semicolon)".into(),
        b'\t' => "tab".into(),
        b'|' => "'|' (pipe)".into(),
        other => format!("{:?}", char::from(other)),
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Format::Csv {
                encoding,
                delimiter,
                detected,
            } => write!(
                f,
                "CSV text, {}, delimiter {}, {}",
                encoding.name(),
                delimiter_name(*delimiter),
                if *detected {
                    "detected from the header line"
                } else {
                    "from --delimiter"
                }
            ),
            Format::Workbook { kind, sheet } => write!(f, "{}, sheet {sheet:?}", kind.name()),
        }
    }
}

/// A reader of a file at its own offset, sharing the one open handle with other passes.
#[derive(Clone)]
pub struct At {
    file: Arc<File>,
    pos: u64,
}

impl At {
    fn new(file: &Arc<File>) -> At {
        At {
            file: file.clone(),
            pos: 0,
        }
    }
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(&*self.file, buf, self.pos)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(&*self.file, buf, self.pos)?;
        #[cfg(not(any(unix, windows)))]
        let n = {
            let _ = buf;
            return Err(io::Error::other("positional reads are not supported here"));
        };
        let step = u64::try_from(n).map_err(io::Error::other)?;
        self.pos = self.pos.saturating_add(step);
        Ok(n)
    }
}

impl Seek for At {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        let target = match from {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.file.metadata()?.len().checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// A stream of the input's bytes, from whichever source.
type Stream = Box<dyn Read + Send>;

enum Data {
    /// An open regular file (or a stream copied to a temporary file).
    File(Arc<File>),
    /// A stream that can be read once: standard input, or a pipe such as `<(zcat x.csv.gz)`;
    /// `None` once handed out.
    Stream(Option<Stream>),
}

/// The input, opened once; see the [module documentation](self).
pub struct InputSource {
    path: String,
    data: Data,
    flags: InputFormat,
    /// The workbook kind, when it is one.
    workbook: Option<WorkbookKind>,
    /// What the latest pass found.
    format: Option<Format>,
}

impl InputSource {
    /// Opens `path` (`-` is standard input): the one place the input is opened. A file is
    /// checked here: not a directory, readable, a workbook by extension or content, and a text
    /// file's bytes all UTF-8 (or UTF-16 with a BOM), so that a file that cannot be read stops
    /// the run before anything is sent. A pipe or device is read once, like standard input.
    pub fn open(path: &str, flags: &InputFormat) -> Result<InputSource, InputFileError> {
        let mut source = InputSource {
            path: path.to_string(),
            data: Data::Stream(None),
            flags: flags.clone(),
            workbook: None,
            format: None,
        };
        if path == "-" {
            source.data = Data::Stream(Some(Box::new(io::stdin())));
            return Ok(source);
        }
        let file = File::open(path).map_err(|e| source.io_err(e))?;
        let metadata = file.metadata().map_err(|e| source.io_err(e))?;
        if metadata.is_dir() {
            return Err(source.err("is a directory".into()));
        }
        if metadata.is_file() {
            source.inspect(Arc::new(file))?;
        } else {
            // A pipe or device: no positional reads; read once like standard input, and
            // copied to a temporary file when a workbook (which needs seeking) is named.
            source.data = Data::Stream(Some(Box::new(file)));
            if WorkbookKind::from_path(path).is_some() {
                source.spool()?;
            }
        }
        Ok(source)
    }

    /// [`InputSource::open`] on tokio's blocking pool: the open scans a whole text file for
    /// UTF-8 and opens a workbook, which must not hold up the runtime's one thread (the
    /// sandbox's simulator and the signal handlers share it).
    pub async fn open_off_runtime(
        path: &str,
        flags: &InputFormat,
    ) -> Result<InputSource, InputFileError> {
        let (owned, flags) = (path.to_string(), flags.clone());
        off_runtime(path, move || InputSource::open(&owned, &flags)).await
    }

    /// Whether the input is a workbook (its rows come from a reader thread).
    pub fn is_workbook(&self) -> bool {
        self.workbook.is_some()
    }

    /// Whether the input is a stream (standard input, a pipe) that can be read only once.
    pub fn is_stream(&self) -> bool {
        matches!(self.data, Data::Stream(_))
    }

    /// Copies a stream to an anonymous temporary file so it can be read more than once (a
    /// no-op for a file). Waits for the end of the input.
    pub fn spool(&mut self) -> Result<(), InputFileError> {
        let mut stream = match &mut self.data {
            Data::File(_) => return Ok(()),
            Data::Stream(stream) => stream
                .take()
                .ok_or_else(|| self.err("the input was already read".into()))?,
        };
        let buffer_err = |source| InputFileError::InputBuffer {
            path: self.path.clone(),
            source,
        };
        let mut file = tempfile::tempfile().map_err(buffer_err)?;
        io::copy(&mut stream, &mut file).map_err(buffer_err)?;
        self.inspect(Arc::new(file))
    }

    /// Takes an opened file as the data and checks it: workbook or text, and text all decodable.
    fn inspect(&mut self, file: Arc<File>) -> Result<(), InputFileError> {
        self.data = Data::File(file.clone());
        let mut head = Vec::with_capacity(8);
        let read = At::new(&file).take(8).read_to_end(&mut head);
        read.map_err(|e| self.io_err(e))?;
        let head = &head[..];
        let by_extension = WorkbookKind::from_path(&self.path);
        // The content decides: web applications export CSV or TSV named `.xls`, and a workbook
        // may be saved under any name. The extension only says which reader to try first.
        if is_workbook_magic(head) {
            self.workbook = Some(sniff_workbook(&file, head, by_extension).ok_or_else(|| {
                self.err("the file is a zip or OLE container but not a workbook this tool reads (.xlsx, .xlsm, .xls, .ods); save it as .xlsx or as CSV UTF-8".into())
            })?);
            return Ok(());
        }
        if looks_like_bomless_utf16(&head[..head.len().min(4)]) {
            return Err(self.err(UTF16_WITHOUT_BOM.into()));
        }
        if matches!(Encoding::sniff(head), Encoding::Utf8 | Encoding::Utf8Bom) {
            if let Some(line) = first_non_utf8_line(At::new(&file)).map_err(|e| self.io_err(e))? {
                return Err(self.input_err(InputError::NotUtf8 { line }));
            }
        }
        Ok(())
    }

    fn err(&self, reason: String) -> InputFileError {
        InputFileError::Input {
            path: self.path.clone(),
            reason,
        }
    }

    /// Reading the input failed; the I/O error is kept as the cause.
    fn io_err(&self, source: io::Error) -> InputFileError {
        InputFileError::InputIo {
            path: self.path.clone(),
            source,
        }
    }

    /// The reader refused the input; its error is kept as the cause.
    fn input_err(&self, source: InputError) -> InputFileError {
        InputFileError::InputRead {
            path: self.path.clone(),
            source,
        }
    }

    /// What the latest pass found (`None` before the first), for `validate` and the debug log.
    pub fn format(&self) -> Option<&Format> {
        self.format.as_ref()
    }

    /// A reader from the first row, validating with `opts`. Each call is a new pass over the
    /// same data; standard input gives one pass unless [`InputSource::spool`]ed.
    pub fn reader(&mut self, opts: InputOptions) -> Result<InputReader<Stream>, InputFileError> {
        let (source, format) = self.pass()?;
        tracing::debug!(input = %self.path, "input read as {format}");
        let reader = InputReader::start(source, &format, opts).map_err(|e| self.input_err(e));
        self.format = Some(format);
        reader
    }

    /// The number of data records a reader would yield, for the progress bar's total; `None`
    /// for standard input (it can be read once) or when counting fails.
    pub fn count(&mut self) -> Option<u64> {
        if self.is_stream() {
            return None;
        }
        input::count(self.pass().ok()?.0).ok()
    }

    /// A new pass over the data: its records (the sheet's rows, or the text decoded and split on
    /// the delimiter), and what the input turned out to be.
    fn pass(&mut self) -> Result<(Source<Stream>, Format), InputFileError> {
        // `--max-record-bytes`: a u32 fits a usize on the targets built (32 and 64 bits).
        let flag = self.flags.max_record_bytes;
        let limit = flag.map_or(input::MAX_RECORD_BYTES, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
        let raw: Stream = match (&mut self.data, self.workbook) {
            (Data::File(file), Some(kind)) => {
                let sheet = self.flags.sheet.as_deref();
                let (sheet, rows) = sheet::open(At::new(file), kind, sheet).map_err(|source| {
                    InputFileError::InputSheet {
                        path: self.path.clone(),
                        source,
                    }
                })?;
                let format = Format::Workbook { kind, sheet };
                return Ok((Source::with_feed(Feed::Sheet(rows), limit), format));
            }
            (Data::File(file), None) => Box::new(At::new(file)),
            (Data::Stream(stream), _) => stream.take().ok_or_else(|| {
                self.err("this input can be read only once; give the rows as a file".into())
            })?,
        };
        self.text(raw, limit).map_err(|e| self.io_err(e))
    }

    /// Decodes the text (UTF-16 to UTF-8), settles the delimiter from the header line, and
    /// splits it into records of at most `limit` bytes from the first byte (nothing consumed).
    fn text(&self, raw: Stream, limit: usize) -> io::Result<(Source<Stream>, Format)> {
        // Buffered: the header is sniffed a byte at a time.
        let mut raw = io::BufReader::with_capacity(64 * 1024, raw);
        let mut head = Vec::with_capacity(4);
        (&mut raw).take(4).read_to_end(&mut head)?;
        let refused = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidData, why));
        if self.is_stream() && is_workbook_magic(&head) {
            return refused(WORKBOOK_ON_STDIN);
        }
        if looks_like_bomless_utf16(&head) {
            return refused(UTF16_WITHOUT_BOM);
        }
        let encoding = Encoding::sniff(&head);
        let joined: Stream = Box::new(io::Cursor::new(head).chain(raw));
        let mut text: Stream = match encoding {
            Encoding::Utf16Le | Encoding::Utf16Be => Box::new(
                encoding_rs_io::DecodeReaderBytesBuilder::new()
                    .strip_bom(true)
                    .build(joined),
            ),
            Encoding::Utf8 | Encoding::Utf8Bom => joined,
        };
        let (delimiter, detected) = match self.flags.delimiter {
            Some(d) => (d, false),
            None => {
                let line = read_header_line(&mut text)?;
                let delimiter = detect_delimiter(&line);
                text = Box::new(io::Cursor::new(line).chain(text));
                (delimiter, true)
            }
        };
        let format = Format::Csv {
            encoding,
            delimiter,
            detected,
        };
        Ok((Source::csv(text, delimiter, limit), format))
    }
}

/// Runs blocking input work (a whole-file scan, a workbook open, reading standard input) on
/// tokio's blocking pool and waits for it, so the runtime's single thread stays free for the
/// sandbox's simulator and for Ctrl-C. A panic in `work` is passed on as it would have been.
pub async fn off_runtime<T, E, F>(path: &str, work: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<InputFileError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(source) => Err(InputFileError::InputTask {
            path: path.to_string(),
            what: "reading the input was cancelled",
            source,
        }
        .into()),
    }
}

/// A zip or OLE file arrived on standard input.
const WORKBOOK_ON_STDIN: &str = "the input looks like a workbook, which cannot be read from standard input or a pipe; give it as a file (--input customers.xlsx) or save it as CSV UTF-8";

/// Every other byte is NUL: UTF-16 that lost its byte-order mark.
const UTF16_WITHOUT_BOM: &str = "the file looks like UTF-16 text without a byte-order mark; re-save it as \"CSV UTF-8 (Comma delimited) (*.csv)\" (Excel) or as Text CSV with character set \"Unicode (UTF-8)\" (LibreOffice)";

/// ASCII text in UTF-16 without a BOM: NUL in every other byte of the first four.
fn looks_like_bomless_utf16(head: &[u8]) -> bool {
    matches!(head, [a, 0, b, 0] | [0, a, 0, b] if *a != 0 && *b != 0)
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const OLE_MAGIC: &[u8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1";

/// Whether the first bytes are a zip archive's (.xlsx, .ods) or an OLE file's (.xls).
fn is_workbook_magic(head: &[u8]) -> bool {
    head.starts_with(ZIP_MAGIC) || (head.len() >= 4 && OLE_MAGIC.starts_with(head))
}

/// The kind of workbook a zip or OLE file is: the one whose reader opens it, trying the kind
/// the extension names first.
fn sniff_workbook(
    file: &Arc<File>,
    head: &[u8],
    hint: Option<WorkbookKind>,
) -> Option<WorkbookKind> {
    let candidates: &[WorkbookKind] = if head.starts_with(ZIP_MAGIC) {
        // Both .xlsx and .ods are zip archives.
        &[WorkbookKind::Xlsx, WorkbookKind::Ods]
    } else {
        &[WorkbookKind::Xls]
    };
    let hinted = hint.filter(|h| candidates.contains(h));
    hinted
        .into_iter()
        .chain(candidates.iter().copied().filter(|k| Some(*k) != hinted))
        .find(|kind| sheet::open_book(At::new(file), *kind).is_ok())
}

/// The 1-based line of the first byte that is not UTF-8, scanning the whole stream.
fn first_non_utf8_line(mut reader: impl Read) -> io::Result<Option<u64>> {
    // Holds one 64 KiB read after the bytes of a character split across two reads.
    let mut buf = Vec::with_capacity(64 * 1024 + 4);
    let mut line = 1u64;
    loop {
        // `read_to_end` retries a read interrupted by a signal.
        let n = (&mut reader).take(64 * 1024).read_to_end(&mut buf)?;
        let (valid, bad) = match std::str::from_utf8(&buf) {
            Ok(_) => (buf.len(), false),
            Err(e) if e.error_len().is_none() && n > 0 => (e.valid_up_to(), false),
            Err(e) => (e.valid_up_to(), true),
        };
        line += buf[..valid].iter().filter(|b| **b == b'\n').count() as u64;
        if bad {
            return Ok(Some(line));
        }
        if n == 0 {
            return Ok(None);
        }
        buf.drain(..valid);
    }
}

/// Reads through the first line that is not blank (line breaks inside quotes do not end it);
/// everything read is returned, blank lines before it included.
#[allow(clippy::unbuffered_bytes)] // byte by byte: nothing past the header may be consumed
fn read_header_line(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut line_start = 0;
    let mut quoted = false;
    for byte in reader.bytes().take(MAX_HEADER_SNIFF) {
        let byte = byte?;
        out.push(byte);
        match byte {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => {
                if !is_blank_line(&out[line_start..]) {
                    break;
                }
                line_start = out.len();
            }
            _ => {}
        }
    }
    Ok(out)
}

fn is_blank_line(line: &[u8]) -> bool {
    let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
    line.iter()
        .all(|b| b.is_ascii_whitespace() || CANDIDATES.contains(b) || *b == b'"')
}

/// The candidate found most often outside quotes in the last line of `text`; ties go to the
/// earlier candidate, and a line without any is comma-separated.
pub fn detect_delimiter(text: &[u8]) -> u8 {
    let trimmed = text.strip_suffix(b"\n").unwrap_or(text);
    let start = trimmed
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let line = &text[start..];
    let mut counts = [0usize; CANDIDATES.len()];
    let mut quoted = false;
    for b in line {
        if *b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(i) = CANDIDATES.iter().position(|c| c == b) {
                counts[i] += 1;
            }
        }
    }
    // `min_by_key` keeps the first of equals: the earlier candidate.
    CANDIDATES
        .into_iter()
        .zip(counts)
        .min_by_key(|(_, n)| std::cmp::Reverse(*n))
        .map_or(b',', |(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::ChainExt;
    use std::path::Path;

    #[test]
    fn the_most_frequent_separator_outside_quotes_wins() {
        assert_eq!(detect_delimiter(b"customer_id,qualification\n"), b',');
        assert_eq!(
            detect_delimiter(b"customer_id;qualification;code\r\n"),
            b';'
        );
        assert_eq!(detect_delimiter(b"customer_id\tqualification\n"), b'\t');
        assert_eq!(detect_delimiter(b"customer_id|qualification\n"), b'|');
        assert_eq!(
            detect_delimiter(b"\"id, the tenant's\";\"qualification, type\";x\n"),
            b';'
        );
        assert_eq!(detect_delimiter(b"\n\ncustomer_id;q\n"), b';');
        assert_eq!(detect_delimiter(b"customer_id\n"), b',');
        assert_eq!(detect_delimiter(b"a;b,c\n"), b',', "ties go to comma");
    }

    #[test]
    fn delimiter_flag_values() {
        assert_eq!(parse_delimiter("semicolon"), Ok(b';'));
        assert_eq!(parse_delimiter("TAB"), Ok(b'\t'));
        assert_eq!(parse_delimiter("\\t"), Ok(b'\t'));
        assert_eq!(parse_delimiter("|"), Ok(b'|'));
        assert_eq!(parse_delimiter(":"), Ok(b':'));
        assert!(parse_delimiter("\"").is_err());
        assert!(parse_delimiter("ab").is_err());
        assert!(parse_delimiter("x").is_err());
    }

    #[test]
    fn the_first_bad_line_is_found_across_reads() {
        let mut data = "a\n".repeat(40_000).into_bytes();
        data.extend_from_slice("é\n".as_bytes());
        assert_eq!(first_non_utf8_line(&data[..]).expect("read"), None);
        // A two-byte character split by the 64 KiB read boundary is not an error.
        let mut split = vec![b'a'; 64 * 1024 - 1];
        split.extend_from_slice("é\n".as_bytes());
        split.extend_from_slice(b"x\xe9\n");
        assert_eq!(first_non_utf8_line(&split[..]).expect("read"), Some(2));
        assert_eq!(
            first_non_utf8_line(&b"ok\nok\ncaf\xe9\n"[..]).expect("read"),
            Some(3)
        );
        // A truncated character at the very end is bad too.
        assert_eq!(
            first_non_utf8_line(&b"ok\n\xc3"[..]).expect("read"),
            Some(2)
        );
    }

    #[test]
    fn the_header_line_is_read_through_its_end_only() {
        let mut input = &b"\n  \n\"a\nb\";c\nrest"[..];
        let line = read_header_line(&mut input).expect("read");
        assert_eq!(line, b"\n  \n\"a\nb\";c\n");
        assert_eq!(input, b"rest");
    }

    const A: &str = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7";
    const B: &str = "11111111-2222-3333-4444-555555555555";

    fn rows_of(source: &mut InputSource) -> Vec<(u64, String, Option<String>)> {
        let reader = source.reader(InputOptions::default()).expect("header");
        reader
            .map(|r| match r.expect("read") {
                crate::input::Record::Valid(row) => {
                    (row.index, row.customer_id.to_string(), row.validation_code)
                }
                crate::input::Record::Rejected(r) => (r.row, r.customer_id, r.error_message),
            })
            .collect()
    }

    fn workbook(path: &Path, second_sheet: bool) {
        use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        sheet.set_name("Customers").expect("name");
        for (c, h) in ["Customer ID", "Qualification", "Validation Code", "Start"]
            .iter()
            .enumerate()
        {
            sheet
                .write_string(0, u16::try_from(c).expect("col"), *h)
                .expect("write");
        }
        sheet.write_string(1, 0, A).expect("write");
        sheet.write_string(1, 1, "GCC").expect("write");
        // Stored as a number, shown as 482913.
        sheet.write_number(1, 2, 482913.0).expect("write");
        let date = ExcelDateTime::from_ymd(2024, 3, 1).expect("date");
        sheet
            .write_datetime_with_format(1, 3, &date, &Format::new().set_num_format("yyyy-mm-dd"))
            .expect("write");
        // Row 3 is left empty: the next row is the sheet's row 4.
        sheet.write_string(3, 0, B).expect("write");
        sheet
            .write_string(3, 1, "GovernmentCommunityCloud")
            .expect("write");
        sheet.write_number(3, 2, 7.5).expect("write");
        if second_sheet {
            let other = book.add_worksheet();
            other.set_name("Other").expect("name");
            other.write_string(0, 0, "tenant_id").expect("write");
            other.write_string(0, 1, "qualification").expect("write");
            other.write_string(1, 0, B).expect("write");
            other.write_string(1, 1, "StateOwnedEntity").expect("write");
        }
        book.save(path).expect("save");
    }

    #[test]
    fn a_workbook_reads_as_shown_with_the_sheets_row_numbers() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("book.xlsx");
        workbook(&path, true);
        let path = path.to_string_lossy().into_owned();
        let mut source = InputSource::open(&path, &InputFormat::default()).expect("opens");
        let rows = rows_of(&mut source);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], (2, A.to_string(), Some("482913".to_string())));
        assert_eq!(rows[1].0, 4);
        // The number cell reads as shown; a validation code is text, so 7.5 is one.
        assert_eq!(rows[1].2.as_deref(), Some("7.5"), "{rows:?}");
        assert_eq!(
            source.format(),
            Some(&Format::Workbook {
                kind: WorkbookKind::Xlsx,
                sheet: "Customers".into()
            })
        );
        // A second pass over the same handle sees the same rows; the count agrees.
        assert_eq!(rows_of(&mut source), rows);
        assert_eq!(source.count(), Some(2));

        let flags = InputFormat {
            sheet: Some("other".into()),
            ..InputFormat::default()
        };
        let mut source = InputSource::open(&path, &flags).expect("opens");
        assert_eq!(rows_of(&mut source), [(2, B.to_string(), None)]);

        let flags = InputFormat {
            sheet: Some("Nope".into()),
            ..InputFormat::default()
        };
        let mut source = InputSource::open(&path, &flags).expect("opens");
        let e = source
            .reader(InputOptions::default())
            .err()
            .expect("no such sheet");
        assert!(
            e.chain()
                .contains("no sheet named \"Nope\"; its sheets are: \"Customers\", \"Other\""),
            "{e}"
        );
    }

    #[test]
    fn a_workbook_under_a_csv_name_is_recognised_by_its_content() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("book.xlsx");
        workbook(&path, false);
        let renamed = dir.path().join("export.csv");
        std::fs::rename(&path, &renamed).expect("rename");
        let mut source =
            InputSource::open(&renamed.to_string_lossy(), &InputFormat::default()).expect("opens");
        assert_eq!(rows_of(&mut source).len(), 2);
    }

    #[test]
    fn the_content_not_the_name_decides_the_format() {
        let dir = tempfile::tempdir().expect("dir");
        // A web application's "Excel export" that is really tab-separated text.
        let fake = dir.path().join("export.xls");
        std::fs::write(
            &fake,
            format!("Tenant ID\tQualification\n{A}\tStateOwnedEntity\n"),
        )
        .expect("write");
        let mut source =
            InputSource::open(&fake.to_string_lossy(), &InputFormat::default()).expect("opens");
        assert_eq!(rows_of(&mut source), [(1, A.to_string(), None)]);
        // A zip that is no workbook.
        let zip = dir.path().join("data.xlsx");
        std::fs::write(&zip, b"PK\x03\x04 not really a zip").expect("write");
        let e = InputSource::open(&zip.to_string_lossy(), &InputFormat::default())
            .err()
            .expect("refused");
        assert!(
            e.to_string().contains("not a workbook this tool reads"),
            "{e}"
        );
    }

    #[test]
    fn utf16_with_a_bom_is_decoded_both_ways() {
        let dir = tempfile::tempdir().expect("dir");
        let text =
            format!("\u{feff}Tenant ID\tQualification\r\n{A}\tStateOwnedEntity\r\n{B}\tGCC\r\n");
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        for (name, bytes, encoding) in [
            ("le.txt", le, Encoding::Utf16Le),
            ("be.txt", be, Encoding::Utf16Be),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            let mut source =
                InputSource::open(&path.to_string_lossy(), &InputFormat::default()).expect("opens");
            let rows = rows_of(&mut source);
            assert_eq!(rows[0], (1, A.to_string(), None), "{name}");
            assert_eq!(rows[1].0, 2, "{name}: GCC without a code is row 2");
            assert_eq!(
                source.format(),
                Some(&Format::Csv {
                    encoding,
                    delimiter: b'\t',
                    detected: true
                })
            );
            assert_eq!(source.count(), Some(2));
        }
    }

    #[test]
    fn utf16_without_a_bom_is_named_not_misread() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("nobom.csv");
        let text = format!("customer_id,qualification\n{A},StateOwnedEntity\n");
        let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        std::fs::write(&path, bytes).expect("write");
        let e = InputSource::open(&path.to_string_lossy(), &InputFormat::default())
            .err()
            .expect("refused");
        assert!(
            e.to_string()
                .contains("UTF-16 text without a byte-order mark"),
            "{e}"
        );
        assert!(looks_like_bomless_utf16(b"\0c\0u"));
        assert!(!looks_like_bomless_utf16(b"\xff\xfec\0"));
        assert!(!looks_like_bomless_utf16(b"cust"));
    }

    #[test]
    fn a_latin1_file_is_refused_at_open_naming_the_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("latin1.csv");
        let mut bytes = format!(
            "customer_id;qualification;name\n{A};StateOwnedEntity;ok\n{B};StateOwnedEntity;Mus"
        )
        .into_bytes();
        bytes.extend_from_slice(b"\xe9e\n");
        std::fs::write(&path, bytes).expect("write");
        let e = InputSource::open(&path.to_string_lossy(), &InputFormat::default())
            .err()
            .expect("refused");
        let message = e.chain();
        assert!(
            message.contains("not UTF-8")
                && message.contains("line 3")
                && message.contains("CSV UTF-8"),
            "{message}"
        );
    }

    mod equivalence {
        use super::*;
        use proptest::prelude::*;

        fn write(rows: &[[String; 3]], delimiter: u8) -> String {
            let mut out = csv::WriterBuilder::new()
                .delimiter(delimiter)
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::new());
            out.write_record(["Customer ID", "Qualification", "Notes"])
                .expect("header");
            for row in rows {
                out.write_record(row).expect("row");
            }
            String::from_utf8(out.into_inner().expect("flush")).expect("UTF-8")
        }

        fn records(path: &Path) -> Vec<String> {
            let mut source =
                InputSource::open(&path.to_string_lossy(), &InputFormat::default()).expect("opens");
            let reader = source.reader(InputOptions::default()).expect("header");
            reader.map(|r| format!("{:?}", r.expect("read"))).collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

            /// Whatever the separator and encoding, the same rows give the same records.
            #[test]
            fn every_separator_and_encoding_reads_alike(
                rows in prop::collection::vec(
                    (
                        prop::sample::select(vec![A, B, "not;a|guid", "x\ty", ""]),
                        prop::sample::select(vec!["StateOwnedEntity", "GCC", "Nonprofit", "state owned entity"]),
                        "[a-z ,;|\t\"\né€学]{0,12}",
                    ),
                    1..12,
                ),
            ) {
                let rows: Vec<[String; 3]> = rows
                    .into_iter()
                    .map(|(id, q, notes)| [id.to_string(), q.to_string(), notes])
                    .collect();
                let dir = tempfile::tempdir().expect("dir");
                let reference = dir.path().join("ref.csv");
                std::fs::write(&reference, write(&rows, b',')).expect("write");
                let expected = records(&reference);
                prop_assert_eq!(expected.len(), rows.len());
                for delimiter in [b';', b'\t', b'|'] {
                    let text = write(&rows, delimiter);
                    let variants: [(&str, Vec<u8>); 4] = [
                        ("utf8", text.clone().into_bytes()),
                        ("bom", format!("\u{feff}{text}").into_bytes()),
                        ("le", format!("\u{feff}{text}").encode_utf16().flat_map(u16::to_le_bytes).collect()),
                        ("be", format!("\u{feff}{text}").encode_utf16().flat_map(u16::to_be_bytes).collect()),
                    ];
                    for (name, bytes) in variants {
                        let path = dir.path().join(format!("{name}-{delimiter}.csv"));
                        std::fs::write(&path, bytes).expect("write");
                        prop_assert_eq!(&records(&path), &expected, "{} {:?}", name, char::from(delimiter));
                    }
                }
            }
        }
    }
}
