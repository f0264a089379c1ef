//! `pc-qualify refresh`: re-read the vetting state of every created/exists row of an earlier
//! results file and write the same rows with their vetting columns brought up to date. It never posts.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::domain::model::{CustomerId, Qualification, QualificationRecord, ResultRow};
use crate::engine::decide::{log_row, read_list, read_record, set_vetting};
use crate::engine::pool::{run_pool, Feeder, ResultsSink};
use crate::engine::{Ending, JobContext, JobError};
use crate::input::InputFileError;
use crate::partner_center::api;
use crate::partner_center::auth::Credentials;
use crate::partner_center::client::Client;
use crate::results::output::{self, ReadError, ResultsReader, ResultsWriter};
use crate::results::ResultsError;

/// What to refresh.
pub struct RefreshJob {
    /// Output, settings, counters, pacer, stop: what every job is handed.
    pub context: JobContext,
    /// An earlier results file.
    pub input: String,
    /// Where access tokens come from.
    pub credentials: Credentials,
}

/// How a refresh went.
pub struct RefreshReport {
    /// How the refresh ended.
    pub ending: Ending,
    /// Rows written.
    pub rows: u64,
    /// Rows whose vetting state was read.
    pub read: u64,
    /// Rows whose vetting state could not be read (they keep their old values).
    pub unread: u64,
    /// Whether the results were put in place: only a refresh that wrote every row replaces
    /// the output file (a stopped one leaves it as it was).
    pub written: bool,
}

/// Runs a refresh to the end (or until a stop).
pub async fn execute(job: RefreshJob) -> Result<RefreshReport, JobError> {
    let RefreshJob {
        context,
        input,
        credentials,
    } = job;
    let output_path = &context.output;
    let not_results = |source: ReadError| ResultsError::ResultsInput {
        path: input.clone(),
        source,
    };
    let reader = ResultsReader::open(Path::new(&input)).map_err(not_results)?;
    let _lock = crate::results::lock::lock_output(output_path, context.force, false)?;
    // The sign-in yields to a stop (the tool handles Ctrl-C itself); nothing is written yet.
    let Some((client, _)) = context.unless_stopped(context.connect(credentials)).await? else {
        return Ok(RefreshReport {
            ending: context.ending(std::time::Duration::ZERO, false),
            rows: 0,
            read: 0,
            unread: 0,
            written: false,
        });
    };
    let sink = output::replacing(output_path, context.force)?;
    let writer =
        ResultsWriter::with_header(sink).map_err(|e| ResultsError::output_io(output_path, e))?;
    let started = context.begin();
    let read = Arc::new(AtomicU64::new(0));
    let unread = Arc::new(AtomicU64::new(0));
    let sink = ResultsSink {
        writer,
        rows: 0,
        timeline: None,
    };
    let counters = (read.clone(), unread.clone());
    // The input is a file: reading it on the runtime spares a thread hand-off per row.
    let (fed, written) = run_pool(
        &context,
        sink,
        |feeder| tokio::spawn(feed_rows(reader, feeder)),
        move |row| {
            let (client, read, unread) = (client.clone(), counters.0.clone(), counters.1.clone());
            async move {
                // The lookup only borrows the row, so a bug keeps the row as it was, with the
                // panic noted, rather than losing it (and no copy is made for that case).
                let mut row = row;
                let looked = crate::engine::unwind::catch(look_up(&client, &row), |message| {
                    Err(api::sanitize(&format!(
                        "refresh: internal error (please report it): {message}"
                    )))
                })
                .await;
                let ok = match looked {
                    Ok(record) => {
                        set_vetting(&mut row, record);
                        true
                    }
                    Err(reason) => {
                        row.error_message = Some(reason);
                        false
                    }
                };
                log_row(&row);
                if ok { &read } else { &unread }.fetch_add(1, Ordering::Relaxed);
                row
            }
        },
    )
    .await;
    // Left behind after a stop (`None`): not every row was read, so nothing is replaced.
    let fed = fed.unwrap_or(Ok(Ok(None)));
    let fed = fed.map_err(|source| InputFileError::InputTask {
        path: input.clone(),
        what: "the results file's reader stopped",
        source,
    })?;
    let ResultsSink { writer, rows, .. } = written?;
    // A results file that turns bad part-way is still not a results file; the temporary file
    // goes with the writer, and the earlier output stays.
    let fed = fed.map_err(not_results)?;
    // Complete: every row of the input read and written (rows left unread count; rows a stop
    // left behind do not).
    let written = fed == Some(rows);
    if written {
        writer
            .into_inner()
            .and_then(output::Sink::commit)
            .map_err(|e| ResultsError::output_io(output_path, e))?;
        // A timeline an earlier run left beside this path is not these rows' (the report would
        // draw it for them).
        let _ = std::fs::remove_file(crate::results::timeline::timeline_path(output_path));
    }
    let unread = unread.load(Ordering::Relaxed);
    Ok(RefreshReport {
        ending: context.ending(started.elapsed(), unread > 0),
        rows,
        read: read.load(Ordering::Relaxed),
        unread,
        written,
    })
}

/// Rows that need a read go to the workers; the others straight to the writer, unchanged.
/// Returns how many rows were handed on when the input was read to its end, `None` when cut short.
async fn feed_rows(
    mut reader: ResultsReader,
    feeder: Feeder<ResultRow, ResultRow>,
) -> Result<Option<u64>, ReadError> {
    let mut fed = 0u64;
    while let Some(next) = reader.next_row() {
        if feeder.halted() {
            return Ok(None);
        }
        let row = next?;
        let sent = if row.outcome.is_some_and(|o| o.is_settled()) {
            feeder.work.send(row).await.is_ok()
        } else {
            // Rows that pass straight through never wait on a worker: yield now and then.
            tokio::task::consume_budget().await;
            feeder.results.send(row).await.is_ok()
        };
        if !sent {
            return Ok(None);
        }
        fed += 1;
    }
    Ok(Some(fed))
}

/// Re-reads one row's vetting record; the error, as the results cell will say it, when it cannot
/// (the caller then keeps the old values and notes the error).
async fn look_up(client: &Client, row: &ResultRow) -> Result<QualificationRecord, String> {
    let (Some(customer), Ok(qualification)) = (
        CustomerId::parse(&row.customer_id),
        Qualification::parse(&row.qualification),
    ) else {
        return Err("refresh: customer_id or qualification does not parse".into());
    };
    let reason = match read_record(&read_list(client, customer).await, qualification) {
        Ok(Some(record)) => return Ok(record),
        Ok(None) => format!(
            "the customer's list no longer shows {}",
            qualification.as_str()
        ),
        Err(reason) => format!("vetting status not read: {reason}"),
    };
    Err(format!("refresh: {reason}"))
}
