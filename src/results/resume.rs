//! Crash safety and `--resume`: the in-flight journal, and carrying settled rows of an earlier
//! results file into a new run.
//!
//! Before a row's first POST, its `MS-RequestId` is appended to `<output>.journal`, and so is every
//! new one the client draws for a retry after an answer (Microsoft's rule: a new id after any
//! answer), before it is sent: the journal's last line for a row always names the one call that
//! may have landed unanswered. A row that was in flight when the process died has a journal line
//! but no results row; on resume it is sent again with that last request id, so the service can
//! recognise the repeat, and a `409` then means an earlier send had landed (outcome `exists`).
//! A row whose last request id was answered is sent under a new id: that one is spent. The
//! journal says so itself, so that an earlier resume that dropped the row's failed results row
//! does not hide it: after an answer the client journals the id of the next send at once,
//! before it waits to send it, and a row that failed on an answer ends with a nil id. A results
//! row that shows its id answered (an `http_status`) counts too.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::domain::model::{CustomerId, Outcome, Qualification, ResultRow, Row};
use crate::domain::stats::Stats;
use crate::input::Record;
use crate::results::output::ResultsReader;
use crate::results::ResultsError;

/// A compact (customer, qualification) key: 17 bytes instead of two strings.
type Key = (u128, u8);

fn key_of(customer: &str, qualification: &str) -> Option<Key> {
    let customer = CustomerId::parse(customer)?;
    let qualification = Qualification::parse(qualification).ok()?;
    Some((customer.as_u128(), qualification.index()))
}

/// The journal that sits beside a results file: beside the file the path resolves to (like its
/// lock), so that a `--resume` through a symlink or another spelling finds the request ids an
/// interrupted run recorded instead of posting under new ones.
pub fn journal_path(output: &str) -> PathBuf {
    crate::results::lock::side_path(std::path::Path::new(output), ".journal")
}

/// Appends one line per row before the row reaches a worker. Lines are gathered in a buffer
/// and written with one `write` per batch (the reader commits a batch before handing its rows
/// out), so the journal costs a fraction of a system call per row; a crash leaves whole lines,
/// and at worst journals rows that were never posted, which resume then posts normally.
pub struct Journal {
    file: File,
    pending: String,
}

impl Journal {
    /// Opens (or creates) the journal for appending.
    pub fn open(path: &Path) -> io::Result<Journal> {
        let file = crate::domain::atomic::open_side_file(
            path,
            OpenOptions::new().create(true).append(true),
            false,
        )?;
        Ok(Journal {
            file,
            pending: String::new(),
        })
    }

    /// Notes that `row` will be posted with `request_id` (written by the next [`Journal::commit`]).
    pub fn record(&mut self, row: &Row, request_id: Uuid) {
        push_line(&mut self.pending, row, request_id);
    }

    /// A handle the workers append a row's retry request ids through (see [`Appender`]).
    pub fn appender(&self) -> io::Result<Appender> {
        Ok(Appender {
            file: self.file.try_clone()?,
        })
    }

    /// Syncs the journal file to disk (proof, before the first request, that it can be written).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    /// Writes the noted lines; call before the rows they describe can be sent.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(self.pending.as_bytes());
        self.pending.clear();
        result
    }
}

/// One journal line: `row,customer,qualification,request id`.
fn push_line(out: &mut String, row: &Row, request_id: Uuid) {
    // Assembled by hand: this runs once per row, and `write!` costs several times as much.
    let mut id = Uuid::encode_buffer();
    out.push_str(itoa::Buffer::new().format(row.index));
    out.push(',');
    out.push_str(row.customer_id.0.hyphenated().encode_lower(&mut id));
    out.push(',');
    out.push_str(row.qualification.as_str());
    out.push(',');
    out.push_str(request_id.hyphenated().encode_lower(&mut id));
    out.push('\n');
}

/// Appends one line at once, for a request id a worker draws mid-call. The file is opened for
/// appending and each line goes out in one `write`, so these lines never split the reader's.
pub struct Appender {
    file: File,
}

impl Appender {
    /// Writes `row`'s new `request_id` now, before the send that carries it.
    pub fn append(&self, row: &Row, request_id: Uuid) -> io::Result<()> {
        let mut line = String::with_capacity(96);
        push_line(&mut line, row, request_id);
        (&self.file).write_all(line.as_bytes())
    }
}

/// The longest journal line read: the tool's own are under 150 bytes (row number, customer id,
/// qualification, request id).
const MAX_JOURNAL_LINE: u64 = 1024;

/// Request ids of rows that were posted but never finished, by row number (the last line of a
/// row wins: it names the call sent last). The journal is opened as the tool's own side file (a
/// link, FIFO or device planted in its place is refused, not followed or waited on) and read a
/// bounded line at a time: `ln -s /dev/zero out.csv.journal` made the reader try to hold one
/// endless line.
pub fn read_journal(path: &Path) -> io::Result<HashMap<u64, (Key, Uuid)>> {
    let file =
        match crate::domain::atomic::open_side_file(path, OpenOptions::new().read(true), false) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(e),
        };
    let mut reader = BufReader::new(file);
    let mut entries = HashMap::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_JOURNAL_LINE + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        if u64::try_from(line.len()).is_ok_and(|n| n > MAX_JOURNAL_LINE) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds a line longer than {MAX_JOURNAL_LINE} bytes: it is not a journal pc-qualify wrote",
                    path.display()
                ),
            ));
        }
        let text = std::str::from_utf8(line.trim_ascii_end()).unwrap_or_default();
        let [row, customer, qualification, id] = text.split(',').collect::<Vec<_>>()[..] else {
            // A torn last line from a crash: that row's POST had not started.
            continue;
        };
        if let (Ok(row), Some(key), Ok(id)) = (
            row.parse(),
            key_of(customer, qualification),
            Uuid::parse_str(id),
        ) {
            entries.insert(row, (key, id));
        }
    }
    Ok(entries)
}

/// What an earlier results file contributes to a resumed run.
#[derive(Default)]
pub struct ResumeState {
    /// Rows already `created` or `exists`, with their key, which are not sent again.
    pub settled: HashMap<u64, Key>,
    /// Request ids of rows that were in flight when the earlier run stopped, unanswered.
    pub in_flight: HashMap<u64, (Key, Uuid)>,
}

impl ResumeState {
    /// Whether row `index` is already done.
    pub fn is_settled(&self, index: u64) -> bool {
        self.settled.contains_key(&index)
    }

    /// The request id to reuse for `row`, if it was in flight with the same customer and qualification.
    pub fn request_id_for(&self, row: &Row) -> Option<Uuid> {
        self.in_flight
            .get(&row.index)
            .filter(|(key, _)| *key == row.key())
            .map(|(_, id)| *id)
    }

    /// Checks, before anything is sent, that a settled row still names the same customer and
    /// qualification in `input`; otherwise the results belong to another file. True for a
    /// settled row (so the caller can count them for [`ResumeState::verify_seen`]).
    pub fn verify_record(&self, record: &Record, input: &str) -> Result<bool, ResultsError> {
        let (index, key) = match record {
            Record::Valid(row) => (row.index, Some(row.key())),
            Record::Rejected(row) => (row.row, key_of(&row.customer_id, &row.qualification)),
        };
        match self.settled.get(&index) {
            None => Ok(false),
            Some(expected) if key == Some(*expected) => Ok(true),
            Some(_) => Err(self.mismatch(
                format!("row {index} of the input is not the customer and qualification the results record as done"),
                input,
            )),
        }
    }

    /// After the whole input: every settled row was in it (`seen` of them were).
    pub fn verify_seen(&self, seen: usize, input: &str) -> Result<(), ResultsError> {
        if seen == self.settled.len() {
            return Ok(());
        }
        let max = self.settled.keys().max().copied().unwrap_or(0);
        Err(self.mismatch(
            format!("the results record row {max} as done, but the input has fewer rows"),
            input,
        ))
    }

    fn mismatch(&self, reason: String, input: &str) -> ResultsError {
        ResultsError::ResumeMismatch(format!(
            "{reason}; the results file does not belong to {input} (use another --output, or --force to start over)"
        ))
    }
}

/// Reads the results file at `output` (read-only): its settled rows, and the journal's rows in
/// doubt. A missing file resumes from nothing.
pub fn load(output: &str) -> Result<ResumeState, ResultsError> {
    let err = |reason: String| ResultsError::Output {
        path: output.to_string(),
        reason,
    };
    let not_results = |source| ResultsError::ResultsOutput {
        path: output.to_string(),
        source,
    };
    let path = Path::new(output);
    let mut settled = HashMap::new();
    // No results file yet: the earlier run may still have died with rows in flight.
    // A 0-byte file (left by a run that could not write its header) holds nothing either.
    let mut reader = if path.metadata().is_ok_and(|m| m.len() > 0) {
        Some(ResultsReader::open(path).map_err(not_results)?)
    } else {
        None
    };
    // Rows whose deciding request id got an answer: that id is spent (Microsoft's rule: a new
    // id after any answer), and a service that keys idempotency on it would answer a resend
    // with the earlier failure (a 400, or a 429 the run stopped after) without acting.
    let mut answered = HashMap::new();
    while let Some(next) = reader.as_mut().and_then(|r| r.next_row()) {
        let row = next.map_err(not_results)?;
        let Some(outcome) = row.outcome.filter(Outcome::is_settled) else {
            if let (Some(_), Some(id)) = (row.http_status, row.request_id) {
                answered.insert(row.row, id);
            }
            continue;
        };
        let key = key_of(&row.customer_id, &row.qualification).ok_or_else(|| {
            err(format!(
                "row {} is {outcome} but its customer_id/qualification do not parse",
                row.row
            ))
        })?;
        if settled.insert(row.row, key).is_some() {
            return Err(err(format!("row {} appears twice", row.row)));
        }
    }
    let in_flight = read_journal(&journal_path(output))
        .map_err(|source| ResultsError::JournalIo {
            path: output.to_string(),
            source,
        })?
        .into_iter()
        // A nil id: the row's last id was answered (a failure the worker noted). The results
        // row's own `http_status` is the fallback where the journal cannot say: a nil line that
        // could not be written, or a journal of a version before the nil lines.
        .filter(|(row, (_, id))| {
            !id.is_nil() && !settled.contains_key(row) && answered.get(row) != Some(id)
        })
        .collect();
    Ok(ResumeState { settled, in_flight })
}

/// Rewrites the results file to hold only its settled rows (temp file + rename, so a crash
/// leaves either the old or the new file), and counts those rows in `stats`. The rows are written
/// in the documented form (comma, no byte-order mark, LF, the standard columns in order; columns
/// a spreadsheet added are dropped), so the rows this run appends never mix with another layout.
pub fn keep_settled(output: &str, stats: &Stats) -> Result<(), ResultsError> {
    // The file itself, not a symlink to it: renaming onto a link would replace the link with a
    // new file and leave the real results behind, stale.
    let real = crate::results::lock::resolve(Path::new(output));
    let path = real.as_path();
    if !path.metadata().is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    let mut reader = ResultsReader::open(path).map_err(|source| ResultsError::ResultsOutput {
        path: output.to_string(),
        source,
    })?;
    // The results file keeps its mode (it may have been made readable to a reporting user). The
    // reader moves into the copy, which closes it before the rename.
    crate::results::output::rewrite::<ResultRow, _>(path, move |writer| {
        while let Some(next) = reader.next_row() {
            let row = next.map_err(io::Error::other)?;
            let Some(outcome) = row.outcome.filter(Outcome::is_settled) else {
                continue;
            };
            stats.record_outcome(outcome);
            stats.record_vetting(row.vetting_status.as_deref());
            writer.write(&row)?;
        }
        Ok(())
    })
    .map_err(|source| ResultsError::output_io(output, source))
}

#[cfg(test)]
impl Journal {
    /// A journal writing to `file` as it is (tests: a file that refuses writes).
    pub(crate) fn from_file(file: File) -> Journal {
        Journal {
            file,
            pending: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::output::CsvRow as _;

    /// A retry's new request id, appended by a worker, is the one a resume reuses: the row's
    /// last journal line names the call that may have landed unanswered.
    #[test]
    fn the_last_journalled_request_id_of_a_row_wins() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("out.csv.journal");
        let row = Row {
            index: 7,
            customer_id: CustomerId::parse("aaaaaaaa-0000-4000-8000-000000000001").expect("id"),
            qualification: Qualification::StateOwnedEntity,
            validation_code: None,
            segment: None,
            website: None,
        };
        let (first, retry) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut journal = Journal::open(&path).expect("open");
        journal.record(&row, first);
        journal.commit().expect("commit");
        journal
            .appender()
            .expect("appender")
            .append(&row, retry)
            .expect("append");
        let entries = read_journal(&path).expect("read");
        assert_eq!(entries.get(&7), Some(&(row.key(), retry)));
    }

    /// Regression: the journal was read with `File::open` and `lines()`, following a link planted
    /// in its place and reading one endless line whole (`ln -s /dev/zero out.csv.journal`
    /// aborted a resume on a 2 GiB allocation); a FIFO there would have blocked it for good.
    #[cfg(unix)]
    #[test]
    fn a_journal_that_is_a_link_a_fifo_or_one_endless_line_is_refused_unread() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("out.csv.journal");
        std::os::unix::fs::symlink("/dev/zero", &path).expect("symlink");
        let err = read_journal(&path).expect_err("a link");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        std::fs::remove_file(&path).expect("remove");
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.expect("mkfifo runs").success(), "mkfifo");
        let (tx, rx) = std::sync::mpsc::channel();
        let fifo = path.clone();
        std::thread::spawn(move || tx.send(read_journal(&fifo).map(|e| e.len())));
        let read = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert!(
            matches!(read, Ok(Err(_))),
            "a FIFO is refused, not waited on"
        );
        std::fs::remove_file(&path).expect("remove");
        // A regular file with no line end in its first megabyte.
        std::fs::write(&path, vec![b'7'; 1 << 20]).expect("endless line");
        let err = read_journal(&path).expect_err("not a journal");
        assert!(err.to_string().contains("not a journal"), "{err}");
    }

    /// A file a spreadsheet re-saved (BOM, `;`, CRLF, a column of its own, columns moved) comes
    /// back in the documented form with its settled rows only. The unit tests' `atomic::replace`
    /// refuses to rename over a file this process holds open, as Windows does (issue 21), so this
    /// also fails if the reader is still open at the rename.
    #[test]
    fn keep_settled_rewrites_a_resaved_file_in_the_documented_form() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("out.csv");
        let id = |n: u32| format!("aaaaaaaa-0000-4000-8000-{n:012}");
        let rid = "0e1f2a3b-4c5d-4e7f-8091-a2b3c4d5e6f7";
        std::fs::write(
            &path,
            format!(
                "\u{feff}outcome;notes;row;customer_id;qualification;request_id;attempts\r\n\
                 created;\"a; note\";1;{};StateOwnedEntity;{rid};1\r\n\
                 failed;;2;{};StateOwnedEntity;;3\r\n\
                 exists;;3;{};Education;;1\r\n",
                id(1),
                id(2),
                id(3)
            ),
        )
        .expect("seed");
        let stats = Stats::default();
        keep_settled(&path.to_string_lossy(), &stats).expect("rewritten");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!(
                "{}\n1,{},StateOwnedEntity,created,,,,,1,,{rid},,,0\n3,{},Education,exists,,,,,1,,,,,0\n",
                ResultRow::header().collect::<Vec<_>>().join(","),
                id(1),
                id(3)
            )
        );
        assert_eq!(stats.outcome(Outcome::Created), 1);
        assert_eq!(stats.outcome(Outcome::Exists), 1);
        assert_eq!(stats.outcome(Outcome::Failed), 0);
    }
}
