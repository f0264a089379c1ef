//! The run itself: a reader thread streams validated rows into a bounded channel, a fixed pool of
//! workers sends them, and a writer thread records one results row per input row as they finish.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::api;
use crate::auth::{Credentials, TokenProvider};
use crate::client::{http_client, Client, Exchange, Reply};
use crate::config::RunConfig;
use crate::error::{ErrorKind, ExitCode};
use crate::input::{InputOptions, InputReader, Record};
use crate::model::{Outcome, ResultRow, Row};
use crate::output::{self, ResultsWriter};
use crate::stats::Stats;
use crate::throttle::Throttle;

/// What to run: where rows come from and go, with what settings and credentials.
pub struct Job {
    /// Input path, `-` for standard input.
    pub input: String,
    /// Results path, `-` for standard output.
    pub output: String,
    /// Overwrite an existing results file.
    pub force: bool,
    /// Validated settings.
    pub config: RunConfig,
    /// Where access tokens come from.
    pub credentials: Credentials,
}

/// How a finished (or stopped) run went.
pub struct Report {
    /// Counters for the summary.
    pub stats: Arc<Stats>,
    /// Rows written to the results file.
    pub rows: u64,
    /// Wall time of the run proper.
    pub elapsed: Duration,
    /// The run was stopped by a signal before it read every row.
    pub interrupted: bool,
    /// The input became unreadable part-way (the rows before it are in the results).
    pub input_error: Option<String>,
    /// Pool-wide 429 pauses.
    pub pauses: u64,
}

impl Report {
    /// The exit code this run ends the process with.
    pub fn exit_code(&self) -> ExitCode {
        if self.interrupted {
            ExitCode::Interrupted
        } else if self.input_error.is_some()
            || self.stats.outcome(Outcome::Failed) > 0
            || self.stats.outcome(Outcome::Invalid) > 0
        {
            ExitCode::RowsFailed
        } else {
            ExitCode::Success
        }
    }
}

/// Asks a running job to stop: once to drain in-flight rows, twice to stop at once.
#[derive(Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<u8>>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            tx: Arc::new(watch::channel(0).0),
        }
    }
}

impl Stop {
    /// Records one stop request (a signal); the second one is urgent.
    pub fn request(&self) {
        self.tx.send_modify(|n| *n = n.saturating_add(1));
    }

    /// Resolves once a stop has been requested.
    pub async fn wait(&self) {
        let mut rx = self.subscribe();
        let _ = rx.wait_for(|n| *n > 0).await;
    }

    fn subscribe(&self) -> watch::Receiver<u8> {
        self.tx.subscribe()
    }

    fn requested(&self) -> bool {
        *self.tx.borrow() > 0
    }
}

/// Opens the input as a byte stream (`-` is standard input).
fn open_input(path: &str) -> Result<Box<dyn Read + Send>, ErrorKind> {
    if path == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let file = File::open(path).map_err(|e| ErrorKind::Input {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(ErrorKind::Input {
            path: path.to_string(),
            reason: "is a directory".into(),
        });
    }
    Ok(Box::new(file))
}

/// Runs `job` to the end (or until `stop`), writing the results file as rows finish.
pub async fn execute(job: Job, stop: Stop) -> Result<Report, ErrorKind> {
    let Job {
        input,
        output: output_path,
        force,
        config,
        credentials,
    } = job;
    let options = InputOptions {
        contract: config.contract,
        default_segment: config.default_segment,
        default_validation_code: config.default_validation_code.clone(),
    };
    let reader = InputReader::new(open_input(&input)?, options).map_err(|e| ErrorKind::Input {
        path: input.clone(),
        reason: e.to_string(),
    })?;
    output::check_target(&output_path, force)?;

    let http = http_client(config.timeout, config.concurrency)
        .map_err(|e| ErrorKind::Config(format!("HTTP client: {e}")))?;
    let tokens = Arc::new(TokenProvider::new(http.clone(), credentials));
    // Credentials are proven before the results file exists or any row is sent.
    tokens.token().await?;
    let stats = Arc::new(Stats::default());
    let throttle = Arc::new(Throttle::new(config.rate, config.burst));
    let client = Arc::new(Client::new(
        http,
        &config.base_url,
        tokens,
        throttle.clone(),
        config.retry,
        stats.clone(),
    ));

    let sink = output::create(&output_path, force)?;
    let writer = ResultsWriter::with_header(sink).map_err(|e| output_error(&output_path, e))?;
    let started = Instant::now();

    let (work_tx, work_rx) = async_channel::bounded::<Row>(config.concurrency * 2);
    let (result_tx, result_rx) = mpsc::channel::<ResultRow>(config.concurrency * 4 + 64);
    let aborted = Arc::new(AtomicBool::new(false));

    let reader_task = {
        let result_tx = result_tx.clone();
        let stop = stop.clone();
        let aborted = aborted.clone();
        tokio::task::spawn_blocking(move || read_rows(reader, work_tx, result_tx, &stop, &aborted))
    };
    let writer_task = {
        let stats = stats.clone();
        let aborted = aborted.clone();
        tokio::task::spawn_blocking(move || write_rows(result_rx, writer, &stats, &aborted))
    };
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..config.concurrency {
        let work_rx = work_rx.clone();
        let result_tx = result_tx.clone();
        let client = client.clone();
        let mut stop_rx = stop.subscribe();
        let contract = config.contract;
        workers.spawn(async move {
            loop {
                let row = tokio::select! {
                    biased;
                    _ = stop_rx.wait_for(|n| *n > 0) => break,
                    row = work_rx.recv() => match row {
                        Ok(row) => row,
                        Err(_) => break,
                    },
                };
                let result = process_row(&client, contract, row).await;
                if result_tx.send(result).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(result_tx);
    drop(work_rx);

    drain_workers(&mut workers, &stop, config.shutdown_grace).await;
    let input_error = match reader_task.await {
        Ok(result) => result.err(),
        Err(err) => Some(format!("input reader stopped: {err}")),
    };
    let rows = match writer_task.await {
        Ok(Ok(rows)) => rows,
        Ok(Err(err)) => {
            return Err(if err.kind() == std::io::ErrorKind::BrokenPipe {
                ErrorKind::BrokenPipe
            } else {
                output_error(&output_path, err)
            })
        }
        Err(err) => return Err(output_error(&output_path, std::io::Error::other(err))),
    };
    Ok(Report {
        stats,
        rows,
        elapsed: started.elapsed(),
        interrupted: stop.requested(),
        input_error: input_error.map(|e| format!("input {input}: {e}")),
        pauses: throttle.pauses(),
    })
}

/// Waits for the workers; after a stop request gives them the grace period, after a second one none.
async fn drain_workers(workers: &mut tokio::task::JoinSet<()>, stop: &Stop, grace: Duration) {
    let mut stop_rx = stop.subscribe();
    let mut deadline = None;
    loop {
        match deadline {
            None => tokio::select! {
                next = workers.join_next() => if next.is_none() { return },
                _ = stop_rx.wait_for(|n| *n > 0) => {
                    tracing::warn!(
                        grace_s = grace.as_secs_f64(),
                        "stopping: no new rows are taken; waiting for requests in flight"
                    );
                    deadline = Some(tokio::time::Instant::now() + grace);
                }
            },
            Some(deadline) => tokio::select! {
                next = workers.join_next() => if next.is_none() { return },
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("grace period over: abandoning requests still in flight");
                    break;
                }
                _ = stop_rx.wait_for(|n| *n > 1) => {
                    tracing::warn!("second stop signal: abandoning requests still in flight");
                    break;
                }
            },
        }
    }
    workers.abort_all();
    while workers.join_next().await.is_some() {}
}

/// The reader thread: validated rows to the workers, rejected rows straight to the writer.
fn read_rows<R: Read>(
    mut reader: InputReader<R>,
    work_tx: async_channel::Sender<Row>,
    result_tx: mpsc::Sender<ResultRow>,
    stop: &Stop,
    aborted: &AtomicBool,
) -> Result<(), String> {
    while let Some(record) = reader.next_record() {
        if stop.requested() || aborted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let sent = match record.map_err(|e| e.to_string())? {
            Record::Valid(row) => work_tx.send_blocking(row).is_ok(),
            Record::Rejected(row) => {
                if row.outcome == Some(Outcome::Invalid) {
                    tracing::warn!(
                        row = row.row,
                        "row {}: {}",
                        row.row,
                        row.error_message.as_deref().unwrap_or("invalid")
                    );
                }
                result_tx.blocking_send(row).is_ok()
            }
        };
        if !sent {
            return Ok(());
        }
    }
    Ok(())
}

/// The writer thread: writes rows as they come and flushes whenever the queue runs dry, so a
/// crash loses at most the rows still in flight.
fn write_rows<W: std::io::Write>(
    mut rx: mpsc::Receiver<ResultRow>,
    mut writer: ResultsWriter<W>,
    stats: &Stats,
    aborted: &AtomicBool,
) -> std::io::Result<u64> {
    let mut rows = 0u64;
    let result = (|| {
        writer.flush()?;
        while let Some(row) = rx.blocking_recv() {
            let mut next = Some(row);
            while let Some(row) = next {
                writer.write(&row)?;
                if let Some(outcome) = row.outcome {
                    stats.record_outcome(outcome);
                }
                stats.record_vetting(row.vetting_status.as_deref());
                rows += 1;
                next = rx.try_recv().ok();
            }
            writer.flush()?;
        }
        Ok(rows)
    })();
    if result.is_err() {
        // Nothing more can be recorded: tell the reader to stop feeding rows.
        aborted.store(true, Ordering::Relaxed);
        rx.close();
    }
    result
}

fn output_error(path: &str, err: std::io::Error) -> ErrorKind {
    ErrorKind::Output {
        path: path.to_string(),
        reason: err.to_string(),
    }
}

/// Sends one row and describes what became of it.
async fn process_row(client: &Client, contract: crate::model::ApiContract, row: Row) -> ResultRow {
    let started = Instant::now();
    let request = api::create_request(&row, contract);
    let exchange = client.send(&request, Uuid::new_v4()).await;
    let mut result = ResultRow {
        row: row.index,
        customer_id: row.customer_id.to_string(),
        qualification: row.qualification.as_str().to_string(),
        ..ResultRow::default()
    };
    describe_call(&mut result, &exchange);
    match &exchange.reply {
        Reply::Answer { status, body } if (200..300).contains(status) => {
            result.outcome = Some(Outcome::Created);
            set_vetting(&mut result, api::parse_create_answer(body));
        }
        Reply::Answer { status: 409, .. } => {
            result.outcome = Some(Outcome::Exists);
            result.error_code = None;
            result.error_message = None;
            // The create answer says nothing about vetting; the customer's list does.
            let read = client
                .send(&api::list_request(row.customer_id), Uuid::new_v4())
                .await;
            match read_vetting(&read, row.qualification) {
                Ok(Some(vetting)) => set_vetting(&mut result, vetting),
                Ok(None) => {
                    result.error_message = Some(
                        "the service answered 409 but the customer's list does not show the qualification"
                            .into(),
                    )
                }
                Err(reason) => {
                    result.error_message = Some(format!("vetting status not read: {reason}"))
                }
            }
        }
        _ => result.outcome = Some(Outcome::Failed),
    }
    result.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    log_row(&result);
    result
}

/// Fills the columns that describe the deciding call, and its error for a failure.
fn describe_call(result: &mut ResultRow, exchange: &Exchange) {
    result.attempts = exchange.attempts;
    result.correlation_id = exchange.correlation_id;
    result.request_id = Some(exchange.request_id);
    match &exchange.reply {
        Reply::Answer { status, body } => {
            result.http_status = Some(*status);
            if !(200..300).contains(status) {
                let error = api::parse_error_body(body);
                result.error_code = error.code;
                result.error_message = Some(error.message.unwrap_or_else(|| {
                    format!("HTTP {status} after {} attempt(s)", exchange.attempts)
                }));
            }
        }
        Reply::Transport(reason) => {
            result.error_code = Some("transport".into());
            result.error_message =
                Some(format!("{reason} (after {} attempt(s))", exchange.attempts));
        }
        Reply::Token(reason) => {
            result.error_code = Some("token".into());
            result.error_message = Some(api::sanitize(reason));
        }
    }
}

/// The vetting fields of `qualification` from a list read, `Ok(None)` when it is not listed.
fn read_vetting(
    exchange: &Exchange,
    qualification: crate::model::Qualification,
) -> Result<Option<api::Vetting>, String> {
    match &exchange.reply {
        Reply::Answer { status, body } if (200..300).contains(status) => {
            let list = api::parse_qualification_list(body)?;
            Ok(api::find_qualification(list, qualification).map(api::Vetting::from))
        }
        Reply::Answer { status, body } => {
            let error = api::parse_error_body(body);
            Err(format!(
                "GET answered {status}{}",
                error.message.map(|m| format!(": {m}")).unwrap_or_default()
            ))
        }
        Reply::Transport(reason) | Reply::Token(reason) => Err(api::sanitize(reason)),
    }
}

fn set_vetting(result: &mut ResultRow, vetting: api::Vetting) {
    result.vetting_status = vetting.status.map(|s| api::sanitize(&s));
    result.vetting_reason = vetting.reason.map(|s| api::sanitize(&s));
    result.vetting_create_date = vetting.create_date.map(|s| api::sanitize(&s));
}

fn display_id(id: Option<Uuid>) -> tracing::field::DisplayValue<String> {
    tracing::field::display(id.map(|id| id.to_string()).unwrap_or_default())
}

fn log_row(result: &ResultRow) {
    let outcome = result.outcome.map_or("", |o| o.as_str());
    if result.outcome == Some(Outcome::Failed) {
        tracing::warn!(
            row = result.row,
            customer_id = %result.customer_id,
            outcome,
            http_status = result.http_status,
            error_code = result.error_code.as_deref().unwrap_or(""),
            error = result.error_message.as_deref().unwrap_or(""),
            request_id = display_id(result.request_id),
            correlation_id = display_id(result.correlation_id),
            "row failed"
        );
    } else {
        tracing::debug!(
            row = result.row,
            customer_id = %result.customer_id,
            outcome,
            http_status = result.http_status,
            vetting_status = result.vetting_status.as_deref().unwrap_or(""),
            request_id = display_id(result.request_id),
            correlation_id = display_id(result.correlation_id),
            "row done"
        );
    }
}
