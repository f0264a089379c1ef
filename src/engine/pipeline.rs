//! `run` and `reconcile` from input to results: the reader streams validated rows (journalled
//! first) into the shared worker pool ([`crate::engine::pool`]), each worker decides and sends its row
//! ([`crate::engine::decide`]), and the writer records one results row per input row as they finish.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::model::{Outcome, ResultRow, Row};
pub use crate::domain::stop::Stop;
pub use crate::engine::decide::Mode;
use crate::engine::decide::{Work, Worker};
use crate::engine::pool::{run_pool, Feeder, ResultsSink};
use crate::engine::preflight;
use crate::engine::{Ending, JobContext, JobError};
use crate::input::source::{off_runtime, InputSource};
use crate::input::InputFileError;
use crate::input::{InputOptions, InputReader, Record};
use crate::partner_center::api::{self, ValidationCode};
use crate::partner_center::auth::Credentials;
use crate::results::lock::lock_output;
use crate::results::output::{self, ResultsWriter};
use crate::results::resume::{self, Journal, ResumeState};
use crate::results::timeline::Timeline;
use crate::results::ResultsError;

/// What to run: where rows come from and go, with what settings and credentials.
pub struct Job {
    /// Output, settings, counters, pacer, stop: what every job is handed.
    pub context: JobContext,
    /// Input path, `-` for standard input (for messages).
    pub input: String,
    /// The input, opened once ([`InputSource::open`]); every pass over it reads from here.
    pub source: InputSource,
    /// Continue an earlier results file instead of starting a new one.
    pub resume: bool,
    /// Plan writes instead of sending them.
    pub dry_run: bool,
    /// Run or reconcile.
    pub mode: Mode,
    /// Where access tokens come from; `None` only for a `run --dry-run`, which sends nothing.
    pub credentials: Option<Credentials>,
}

/// How a finished (or stopped) run went.
#[derive(Default)]
pub struct Report {
    /// How the run ended.
    pub ending: Ending,
    /// Rows written to the results file by this run (carried-over rows not included).
    pub rows: u64,
    /// Rows carried over from an earlier results file by `--resume`.
    pub carried_over: u64,
    /// The input became unreadable part-way (the rows before it are in the results).
    pub input_error: Option<String>,
    /// For a dry run: the first request that would have been sent, token masked.
    pub example_request: Option<String>,
    /// The rotated refresh token could not be written back to `PC_REFRESH_TOKEN_FILE`.
    pub token_file_failed: bool,
    /// Rows whose processing panicked (written as `failed` / `internal`).
    pub internal_errors: u64,
}

/// Runs `job` to the end (or until a stop), writing the results file as rows finish.
pub async fn execute(job: Job) -> Result<Report, JobError> {
    let Job {
        context,
        input,
        mut source,
        resume,
        dry_run,
        mode,
        credentials,
    } = job;
    let (output_path, config) = (&context.output, &context.config);
    let options = InputOptions {
        contract: config.contract,
        default_segment: config.default_segment,
        default_validation_code: config.default_validation_code.clone(),
    };
    let gcc_preflight = config.validation_code_auto && mode == Mode::Run && !dry_run;
    // Spooling standard input, a workbook's open and the header read all block: off the
    // runtime (see `source::off_runtime`), with the source handed there and back.
    let spool = gcc_preflight && !resume;
    let opened = {
        let options = options.clone();
        off_runtime(&input, move || {
            if spool {
                // The pre-flight count is a second pass: standard input is kept for it.
                source.spool()?;
            }
            let reader = source.reader(options)?;
            Ok((source, reader))
        })
    };
    let Some((mut source, mut reader)) = context.unless_stopped(opened).await? else {
        return Ok(stopped_before_start(&context));
    };
    if resume && (input == "-" || output_path == "-") {
        return Err(JobError::Config(
            "--resume needs a file for both --input and --output (it reads them again)".into(),
        ));
    }
    // Before anything is read back or sent.
    let _lock = lock_output(output_path, context.force, resume)?;
    // A sign-in (up to three token attempts) and the pre-flight read yield to a stop, like the
    // input's open above: the tool handles Ctrl-C itself, so nothing else would end them.
    let connected = match credentials {
        Some(credentials) => match context.unless_stopped(context.connect(credentials)).await? {
            Some(connected) => Some(connected),
            None => return Ok(stopped_before_start(&context)),
        },
        None => None,
    };
    let (client, token_provider) = connected.unzip();
    // Read-only until every check has passed: a refused resume leaves the file as it was.
    let resume_state = if resume {
        resume::load(output_path)?
    } else {
        ResumeState::default()
    };
    let mut gcc_code = None;
    if config.validation_code_auto {
        let client = client.as_deref().ok_or_else(|| {
            JobError::Config("--validation-code auto needs credentials to read the codes".into())
        })?;
        let code = preflight::validation_code(client, config.validation_org.as_deref());
        let Some(code) = context.unless_stopped(code).await? else {
            return Ok(stopped_before_start(&context));
        };
        reader.set_default_validation_code(Some(code.validation_id.clone()));
        gcc_code = gcc_preflight.then_some(code);
    }
    // One pass over the input for every check before the run: the resume check and the count
    // of GCC rows the validation code must cover.
    let resume_state = if resume || gcc_code.is_some() {
        let options = InputOptions {
            default_validation_code: gcc_code.as_ref().map(|c| c.validation_id.clone()),
            ..options
        };
        let (code, path) = (gcc_code.clone(), input.clone());
        let checked = off_runtime(&input, move || {
            let mut reader = source.reader(options)?;
            if resume {
                reader.seed_settled(resume_state.settled.iter().map(|(row, key)| (*key, *row)));
            }
            let rows = precheck(reader, &resume_state, resume, code.as_ref(), &path)?;
            Ok((source, resume_state, rows))
        });
        let Some((back, state, gcc_rows)) = context.unless_stopped(checked).await? else {
            return Ok(stopped_before_start(&context));
        };
        source = back;
        if let Some(code) = &gcc_code {
            preflight::check_remaining_creates(code, gcc_rows)?;
        }
        state
    } else {
        resume_state
    };
    if resume {
        reader.seed_settled(resume_state.settled.iter().map(|(row, key)| (*key, *row)));
    }
    let carried_over = resume_state.settled.len() as u64;
    let journal_path = resume::journal_path(output_path);
    // No journal or timeline beside a device or FIFO either: nothing could read them.
    let wants_timeline =
        output_path != "-" && crate::results::lock::is_lockable(Path::new(output_path));
    let wants_journal = wants_timeline && (!dry_run || matches!(mode, Mode::Reconcile { .. }));
    let (writer, journal) = open_outputs(
        output_path,
        &journal_path,
        resume.then_some(&*context.stats),
        context.force,
        wants_journal,
    )?;
    // The journal is this run's to delete at the end only if it wrote one and was not a dry run
    // resuming a real one (a dry run posts nothing, so the request ids of that real run's rows
    // in flight are still in doubt). `run --dry-run` opens none.
    let owns_journal = journal.is_some() && !(dry_run && resume);
    // The workers journal the request ids their retries draw through the same file.
    let appender = journal
        .as_ref()
        .map(Journal::appender)
        .transpose()
        .map_err(|e| ResultsError::output_io(journal_path.display().to_string(), e))?;
    let router = Router {
        resume: resume_state,
        journal,
        example: None,
        // A dry run of `run` shows the first request it would have sent.
        want_example: dry_run && mode == Mode::Run,
        error: None,
        journal_error: None,
        last_row: None,
    };
    let started = context.begin();
    // Requests before the rows (the `--validation-code auto` read) send no row.
    let before_rows = context.stats.requests();
    let feed = |feeder| {
        if input == "-" || source.is_workbook() {
            // Standard input may stall for as long as the producer likes, and a workbook's rows
            // wait on its reader thread: not on the runtime, and one row at a time (a slow
            // producer must not hold a batch back).
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                runtime.block_on(read_rows(reader, router, feeder, 1))
            })
        } else {
            // A file read is a short buffered syscall: reading on the runtime saves two thread
            // hand-offs per row.
            tokio::spawn(read_rows(reader, router, feeder, READ_BATCH))
        }
    };
    let timeline = wants_timeline.then(|| Timeline::start(output_path, resume));
    let sink = ResultsSink {
        writer,
        rows: 0,
        timeline: timeline.flatten(),
    };
    let worker = Arc::new(Worker {
        client,
        contract: config.contract,
        mode,
        dry_run,
        journal: appender,
    });
    let internal_errors = Arc::new(AtomicU64::new(0));
    let counter = internal_errors.clone();
    let (fed, written) = run_pool(&context, sink, feed, move |work: Work| {
        let (worker, internal_errors) = (worker.clone(), counter.clone());
        async move {
            // The fallback row is built only after a panic, from the work the worker borrowed.
            crate::engine::unwind::catch(worker.process(&work), |message| {
                internal_errors.fetch_add(1, Ordering::Relaxed);
                let skeleton = ResultRow {
                    request_id: Some(work.request_id),
                    ..crate::engine::decide::base_row(&work.row)
                };
                failed_internally(skeleton, &message)
            })
            .await
        }
    })
    .await;
    let (input_error, example, journal_error) = match fed {
        Some(Ok(end)) => (end.error, end.example, end.journal_error),
        Some(Err(err)) => (Some(format!("input reader stopped: {err}")), None, None),
        // Left waiting on standard input after a stop: the stop says why the run ended.
        None => (None, None, None),
    };
    // Exit 2 either way; once a request went out, the message says so, and how to finish.
    let sent = context.stats.requests() > before_rows;
    let rows = written.map_err(|err| match err {
        ResultsError::OutputIo { path, source } => failed_part_way(sent, path, source),
        other => other,
    });
    let rows = rows?.rows;
    // The journal kept: --resume finishes the file once the journal can be written.
    if let Some(source) = journal_error {
        let path = journal_path.display().to_string();
        return Err(failed_part_way(sent, path, source).into());
    }
    let internal_errors = internal_errors.load(Ordering::Relaxed);
    let incomplete = input_error.is_some()
        || context.stats.outcome(Outcome::Failed) > 0
        || context.stats.outcome(Outcome::Invalid) > 0;
    let ending = context.ending(started.elapsed(), incomplete);
    if owns_journal
        && !ending.interrupted
        && input_error.is_none()
        && internal_errors == 0
        && ending.fatal.is_none()
    {
        // Every row has its results row: nothing is in doubt any more.
        let failed = std::fs::remove_file(&journal_path).err();
        if let Some(err) = failed.filter(|e| e.kind() != std::io::ErrorKind::NotFound) {
            tracing::warn!(
                journal = %journal_path.display(),
                error = %err,
                "the finished run's journal could not be deleted; delete it by hand before starting another run on this file with --resume"
            );
        }
    }
    Ok(Report {
        ending,
        rows,
        carried_over,
        input_error: input_error.map(|e| format!("input {input}: {e}")),
        example_request: example.map(|row| {
            let request = api::create_request(&row, config.contract);
            preflight::describe_request(&config.base_url, &request)
        }),
        token_file_failed: token_provider.is_some_and(|t| t.token_file_failed()),
        internal_errors,
    })
}

/// The pre-run pass over the input: with `resume`, every row the earlier results settled must
/// still name the same customer and qualification; with `code`, counts the GCC rows still to
/// be posted with it (settled rows left out).
fn precheck<R: std::io::Read>(
    mut reader: InputReader<R>,
    state: &ResumeState,
    resume: bool,
    code: Option<&ValidationCode>,
    input: &str,
) -> Result<u64, JobError> {
    let (mut seen, mut gcc_rows) = (0usize, 0u64);
    while let Some(record) = reader.next_record() {
        let record = record.map_err(|source| InputFileError::InputRead {
            path: input.to_string(),
            source,
        })?;
        let settled = resume && state.verify_record(&record, input)?;
        seen += usize::from(settled);
        // Only rows whose qualification carries a code (GCC) have one.
        if let (Record::Valid(row), Some(code), false) = (&record, code, settled) {
            gcc_rows += u64::from(row.validation_code.as_ref() == Some(&code.validation_id));
        }
    }
    if resume {
        state.verify_seen(seen, input)?;
    }
    Ok(gcc_rows)
}

/// The report of a run stopped while its input was still being opened or checked: nothing was
/// sent and no results file was written.
fn stopped_before_start(context: &JobContext) -> Report {
    let ending = context.ending(Duration::ZERO, false);
    Report {
        ending,
        ..Report::default()
    }
}

/// Decides where each input record goes, journals request ids before rows go out, and says
/// how the reading ended.
struct Router {
    resume: ResumeState,
    journal: Option<Journal>,
    /// The first valid row, kept for a dry run's example request.
    example: Option<Row>,
    want_example: bool,
    /// The input became unreadable part-way.
    error: Option<String>,
    /// The journal could not be written part-way (an output failure, not the input's).
    journal_error: Option<std::io::Error>,
    /// The input row number of the last record read, to say where a read error stopped the run.
    last_row: Option<u64>,
}

/// Where one input record goes.
enum Route {
    /// To a worker.
    Work(Work),
    /// Straight to the writer (invalid or duplicate).
    Result(ResultRow),
    /// Nowhere: an earlier run settled it.
    Skip,
}

impl Router {
    fn route(&mut self, record: Record) -> Route {
        match record {
            Record::Valid(row) if self.resume.is_settled(row.index) => Route::Skip,
            Record::Rejected(row) if self.resume.is_settled(row.row) => Route::Skip,
            Record::Valid(row) => {
                if self.want_example && self.example.is_none() {
                    self.example = Some(row.clone());
                }
                let request_id = self
                    .resume
                    .request_id_for(&row)
                    .unwrap_or_else(crate::partner_center::client::new_uuid);
                if let Some(journal) = &mut self.journal {
                    journal.record(&row, request_id);
                }
                Route::Work(Work { row, request_id })
            }
            Record::Rejected(row) => {
                if row.outcome == Some(Outcome::Invalid) {
                    tracing::warn!(
                        row = row.row,
                        "row {}: {}",
                        row.row,
                        row.error_message.as_deref().unwrap_or("invalid")
                    );
                }
                Route::Result(row)
            }
        }
    }

    /// The next record's route; `None` at the end, on a stop, or on a read error (kept in `self`).
    fn next_route<R: Read>(
        &mut self,
        reader: &mut InputReader<R>,
        feeder: &Feeder<Work, ResultRow>,
    ) -> Option<Route> {
        let record = reader.next_record()?;
        if feeder.halted() {
            return None;
        }
        match record {
            Ok(record) => {
                self.last_row = Some(match &record {
                    Record::Valid(row) => row.index,
                    Record::Rejected(row) => row.row,
                });
                Some(self.route(record))
            }
            Err(e) => {
                // A stream (standard input, a pipe) is not checked ahead, so this can come after
                // rows went out: say how far the run got.
                self.error = Some(match self.last_row {
                    Some(row) => format!(
                        "{e}; reading stopped there: every row up to row {row} (the last one read) has its results row, and nothing after it was read or sent"
                    ),
                    None => format!("{e}; no row was read or sent"),
                });
                None
            }
        }
    }
}

/// Rows the file reader gathers before one journal write hands them all out.
const READ_BATCH: usize = 64;

/// The reader: valid rows to the workers, rejected rows straight to the writer, `batch` rows per
/// journal write.
async fn read_rows<R: Read>(
    mut reader: InputReader<R>,
    mut router: Router,
    feeder: Feeder<Work, ResultRow>,
    batch_size: usize,
) -> Router {
    let mut batch = Vec::with_capacity(batch_size);
    'read: loop {
        let routes = std::iter::from_fn(|| router.next_route(&mut reader, &feeder));
        batch.extend(routes.take(batch_size));
        if batch.is_empty() {
            break;
        }
        // The journal lines of the batch must be on file before its rows can be posted; rows
        // the journal could not record are not sent. The batch's rejected rows need no journal
        // line and still get their results rows; the run then ends as when the results file
        // fails part-way.
        if let Err(e) = router.journal.as_mut().map_or(Ok(()), Journal::commit) {
            for route in batch.drain(..) {
                let Route::Result(row) = route else { continue };
                if feeder.results.send(row).await.is_err() {
                    break;
                }
            }
            router.journal_error = Some(e);
            break;
        }
        for route in batch.drain(..) {
            let sent = match route {
                Route::Work(work) => feeder.work.send(work).await.is_ok(),
                Route::Result(row) => feeder.results.send(row).await.is_ok(),
                Route::Skip => true,
            };
            if !sent {
                break 'read;
            }
        }
        // A run of rejected rows never fills a channel: let the workers and writer in.
        tokio::task::yield_now().await;
    }
    router
}

/// A bug must not lose a row: it becomes `failed` with `error_code` `internal`.
fn failed_internally(mut row: ResultRow, message: &str) -> ResultRow {
    tracing::error!(row = row.row, panic = %message, "internal error while processing a row");
    row.outcome = Some(Outcome::Failed);
    row.error_code = Some("internal".into());
    row.error_message = Some(crate::partner_center::api::sanitize(&format!(
        "internal error (please report it): {message}; the row's request may have been sent, --resume re-sends it with the same MS-RequestId"
    )));
    row
}

/// Opens the results writer and the journal and proves both writable before the first request:
/// the header is written, flushed and synced, the journal created and synced. A failure leaves
/// nothing behind that this run created (a results file that a rerun or `--resume` would trip on).
/// A resume (`resumed`: the stats its carried-over rows are counted in) opens the journal first,
/// and only then rewrites the results file to its settled rows (`resume::keep_settled`): a resume
/// that cannot journal fails with the earlier results as they were, failed rows and their request
/// ids included.
fn open_outputs(
    output_path: &str,
    journal_path: &Path,
    resumed: Option<&crate::domain::stats::Stats>,
    force: bool,
    wants_journal: bool,
) -> Result<(ResultsWriter<output::Sink>, Option<Journal>), JobError> {
    let resume = resumed.is_some();
    // Only a regular file may ever be removed: `--output /dev/full` (or a FIFO) must survive a
    // failed start, above all when running as root.
    let regular =
        |path: &Path| std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    let remove_journal = |created: bool| {
        if created && regular(journal_path) {
            let _ = std::fs::remove_file(journal_path);
        }
    };
    let open_journal = || -> Result<Option<(Journal, bool)>, JobError> {
        if !wants_journal {
            return Ok(None);
        }
        if !resume {
            // A journal left by an earlier run of another file must not lend its request ids.
            let _ = std::fs::remove_file(journal_path);
        }
        let created = !journal_path.exists();
        match Journal::open(journal_path).and_then(|journal| journal.sync().map(|()| journal)) {
            Ok(journal) => Ok(Some((journal, created))),
            Err(e) => {
                remove_journal(created);
                Err(ResultsError::output_io(journal_path.display().to_string(), e).into())
            }
        }
    };
    // A 0-byte file (a disk that filled up as an earlier run started) has no header to append
    // to; the rewrite below leaves a file with a header (the header alone at least) or none.
    let appendable = resume && std::fs::metadata(output_path).is_ok_and(|m| m.len() > 0);
    // A resume opens its journal before it rewrites the results; a new run opens its results
    // first (below), so that an earlier run's journal is removed only once they are in place.
    let mut journal = None;
    if let Some(stats) = resumed {
        journal = open_journal()?;
        let created = journal.as_ref().is_some_and(|(_, created)| *created);
        // Proven appendable before the rewrite too (the handle is closed again: Windows renames
        // over no open file): a read-only results file would otherwise lose its failed rows to
        // the rewrite and then refuse the append.
        let checked = match appendable {
            true => output::append(output_path).map(drop),
            false => Ok(()),
        };
        if let Err(e) = checked.and_then(|()| resume::keep_settled(output_path, stats)) {
            remove_journal(created);
            return Err(e.into());
        }
    }
    let created_journal = journal.as_ref().is_some_and(|(_, created)| *created);
    let cleanup = |journal_created: bool| {
        remove_journal(journal_created);
        // A resumed file holds the earlier run's rows: never removed.
        if output_path != "-" && !resume && regular(Path::new(output_path)) {
            let _ = std::fs::remove_file(output_path);
        }
    };
    let sink = match appendable {
        true => output::append(output_path),
        false => output::create(output_path, force || resume),
    };
    // An open that failed (a `--force` on a read-only file, ETXTBSY, EIO) leaves the earlier
    // results: only a journal this resume created is removed.
    let sink = sink.inspect_err(|_| remove_journal(created_journal))?;
    let writer = match appendable {
        true => Ok(ResultsWriter::without_header(sink)),
        false => ResultsWriter::with_header(sink),
    };
    // Only a file this run created or truncated is removed (never a resumed one).
    let writer = writer.and_then(|mut writer| {
        writer.flush()?;
        writer.sync()?;
        Ok(writer)
    });
    let writer = writer.map_err(|e| {
        cleanup(created_journal);
        ResultsError::output_io(output_path, e)
    })?;
    if !resume {
        journal = match open_journal() {
            Ok(journal) => journal,
            Err(e) => {
                cleanup(false);
                return Err(e);
            }
        };
    }
    Ok((writer, journal.map(|(journal, _)| journal)))
}

/// An output (`path`) that failed part-way through a run: after a row's request was `sent`, its
/// own message (a plain rerun would send again: `--resume`); before, an output that failed, as at
/// the start (invalid rows written, or a dry run of `run`, send nothing).
fn failed_part_way(sent: bool, path: String, source: std::io::Error) -> ResultsError {
    match sent {
        true => ResultsError::OutputAfterSend { path, source },
        false => ResultsError::OutputIo { path, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::ChainExt;

    const GCC: &str = "GovernmentCommunityCloud";

    #[test]
    fn an_output_that_fails_before_any_request_does_not_say_rows_were_sent() {
        // Regression: a journal that failed after only invalid rows were written said "rows
        // were sent before this failure", as after real sends.
        let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let before = failed_part_way(false, "out.csv.journal".into(), denied()).chain();
        assert!(!before.contains("were sent"), "{before}");
        let after = failed_part_way(true, "out.csv.journal".into(), denied()).chain();
        assert!(after.contains("requests were sent"), "{after}");
    }

    fn gcc_input(rows: &[(u32, &str)]) -> InputReader<std::io::Cursor<Vec<u8>>> {
        let mut text = String::from("customer_id,qualification\n");
        for (n, qualification) in rows {
            text.push_str(&format!(
                "00000000-0000-4000-8000-{n:012},{qualification}\n"
            ));
        }
        let options = InputOptions {
            default_validation_code: Some("111".into()),
            ..InputOptions::default()
        };
        InputReader::new(std::io::Cursor::new(text.into_bytes()), options).expect("header")
    }

    fn settled(rows: &[(u64, u32, &str)]) -> ResumeState {
        let mut state = ResumeState::default();
        for &(index, n, qualification) in rows {
            let id = crate::domain::model::CustomerId::parse(&format!(
                "00000000-0000-4000-8000-{n:012}"
            ))
            .expect("id");
            let qualification =
                crate::domain::model::Qualification::parse(qualification).expect("known");
            state
                .settled
                .insert(index, (id.as_u128(), qualification.index()));
        }
        state
    }

    fn code(id: &str) -> ValidationCode {
        ValidationCode {
            validation_id: id.into(),
            organization_name: "County".into(),
            remaining_creates: Some(1),
        }
    }

    /// The one pre-run pass counts the GCC rows still to post (settled rows left out) while it
    /// checks the earlier results against the input.
    #[test]
    fn one_pass_checks_the_resume_and_counts_the_gcc_rows_left() {
        let rows = [(1, GCC), (2, GCC), (3, "Education"), (4, GCC)];
        let state = settled(&[(1, 1, GCC), (3, 3, "Education")]);
        let counted = precheck(gcc_input(&rows), &state, true, Some(&code("111")), "in.csv");
        assert_eq!(counted.expect("the input matches"), 2);
        // Another code covers none of them; without --resume every GCC row counts.
        let none = precheck(gcc_input(&rows), &state, true, Some(&code("222")), "in.csv");
        assert_eq!(none.expect("matches"), 0);
        let all = precheck(
            gcc_input(&rows),
            &state,
            false,
            Some(&code("111")),
            "in.csv",
        );
        assert_eq!(all.expect("no resume check"), 3);
    }

    /// Regression: a resume rewrote the results file to its settled rows before it opened the
    /// journal, so a resume that then failed on the journal (unwritable, a link, a full disk)
    /// exited 2 with the earlier failed rows, and the request ids to quote for them, gone.
    #[test]
    fn a_resume_that_cannot_journal_leaves_the_earlier_results_as_they_were() {
        let dir = tempfile::tempdir().expect("dir");
        let out = dir.path().join("out.csv");
        let id = "aaaaaaaa-0000-4000-8000-000000000001";
        std::fs::write(
            &out,
            format!(
                "row,customer_id,qualification,outcome,http_status,request_id,attempts\n\
                 1,{id},Education,created,201,,1\n\
                 2,{id},StateOwnedEntity,failed,400,0e1f2a3b-4c5d-4e7f-8091-a2b3c4d5e6f7,1\n"
            ),
        )
        .expect("earlier results");
        let before = std::fs::read(&out).expect("read");
        let out_s = out.to_string_lossy().into_owned();
        let journal = resume::journal_path(&out_s);
        // A folder where the journal goes: it cannot be opened for appending, root or not.
        std::fs::create_dir(&journal).expect("a folder in the journal's place");
        let stats = crate::domain::stats::Stats::default();
        let failed = open_outputs(&out_s, &journal, Some(&stats), false, true);
        assert!(failed.is_err(), "the journal cannot be opened");
        assert_eq!(std::fs::read(&out).ok(), Some(before));
    }

    /// Regression: a journal that could not be written part-way was reported as the input's
    /// error (exit 1, "input FILE: could not write the journal"), and the invalid rows of the
    /// batch it failed on were dropped with no results row. The rejected rows still go to the
    /// writer, no valid row is sent, and the failure is the journal's (exit 2, see `execute`).
    #[tokio::test]
    async fn a_journal_that_fails_part_way_sends_nothing_and_keeps_the_rejected_rows() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("out.csv.journal");
        std::fs::write(&path, "").expect("journal");
        // Opened for reading only: every write fails, root or not.
        let read_only = std::fs::File::open(&path).expect("open");
        let router = Router {
            resume: ResumeState::default(),
            journal: Some(Journal::from_file(read_only)),
            example: None,
            want_example: false,
            error: None,
            journal_error: None,
            last_row: None,
        };
        let input = gcc_input(&[(1, GCC), (2, "Educaton"), (3, GCC)]);
        let (work_tx, work_rx) = async_channel::bounded(8);
        let (results_tx, mut results_rx) = tokio::sync::mpsc::channel(8);
        let end = read_rows(input, router, Feeder::on(work_tx, results_tx), 64).await;
        assert!(end.journal_error.is_some(), "the journal's failure is kept");
        assert_eq!(end.error, None, "not an input error");
        assert!(work_rx.try_recv().is_err(), "no valid row is sent");
        let rejected = results_rx
            .try_recv()
            .expect("the invalid row's results row");
        assert_eq!(
            (rejected.row, rejected.outcome),
            (2, Some(Outcome::Invalid))
        );
    }

    #[test]
    fn one_pass_refuses_results_of_another_input() {
        let rows = [(1, GCC), (2, GCC)];
        let moved = settled(&[(1, 2, GCC)]);
        let err = precheck(gcc_input(&rows), &moved, true, None, "in.csv").expect_err("moved");
        assert!(
            err.chain().contains("row 1 of the input is not"),
            "{}",
            err.chain()
        );
        let longer = settled(&[(7, 1, GCC)]);
        let err = precheck(gcc_input(&rows), &longer, true, None, "in.csv").expect_err("short");
        assert!(err.chain().contains("row 7 as done"), "{}", err.chain());
    }

    /// A `--force` start whose open of the existing results file fails (here: the file is a
    /// running program, ETXTBSY, which stops root too) leaves the earlier results where they were.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_forced_open_keeps_the_earlier_results() {
        let dir = tempfile::tempdir().expect("dir");
        let out = dir.path().join("out.csv");
        std::fs::copy("/bin/sleep", &out).expect("a program to keep busy");
        let mut busy = std::process::Command::new(&out)
            .arg("30")
            .spawn()
            .expect("run it");
        let before = std::fs::read(&out).expect("read");
        // Wait until the kernel holds the file as a running text.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let refused = loop {
            match std::fs::OpenOptions::new().write(true).open(&out) {
                Err(e) if e.raw_os_error() == Some(26) => break true,
                _ if std::time::Instant::now() > deadline => break false,
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        if refused {
            let out_s = out.to_string_lossy().into_owned();
            let journal = resume::journal_path(&out_s);
            let err = open_outputs(&out_s, &journal, None, true, true)
                .err()
                .expect("the open fails");
            assert!(
                matches!(err, JobError::Results(ref r) if matches!(**r, ResultsError::OutputIo { .. })),
                "{err}"
            );
            // The cause (the kernel's "text file busy") is kept and printed once.
            let text = err.chain();
            assert!(text.starts_with(&format!("output {out_s}: ")), "{text}");
        }
        let _ = busy.kill();
        let _ = busy.wait();
        // Linux refuses to open a running program for writing (ETXTBSY), root included: a
        // kernel that did not would leave this test checking nothing, so it fails instead.
        assert!(
            refused,
            "the running program's file was never refused for writing"
        );
        assert_eq!(
            std::fs::read(&out).ok(),
            Some(before),
            "the earlier file is neither removed nor changed"
        );
    }
}
