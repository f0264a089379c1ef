//! `pc-qualify export`: every customer of the partner and the qualifications it holds, as CSV.
//!
//! A page reader follows the customer list page by page and feeds customers into a bounded
//! channel; the rate-limited worker pool reads each customer's qualifications (with retries);
//! a writer records each customer's rows as they come. Only one page and the channels' worth of
//! customers are ever held, however many customers the partner has.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::domain::model::{CustomerId, Qualification, QualificationRecord};
use crate::domain::stats::Stats;
use crate::engine::pool::{drain_workers, finish_writer, spawn_pool, spawn_writer, RowSink, Stop};
use crate::engine::{Ending, JobContext, JobError, JobReport};
use crate::input::InputFileError;
use crate::partner_center::api;
use crate::partner_center::auth::Credentials;
use crate::partner_center::client::{Client, Reply};
use crate::partner_center::customers::{self, ListedCustomer, NextPage, Page};
use crate::results::output::{self, csv_to_io, push_text};
use crate::results::ResultsError;

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

/// Empty pages with a next link in a row before the list is deemed to go round in circles.
const MAX_EMPTY_PAGES: u32 = 10;

/// What to export.
pub struct ExportJob {
    /// Output, settings, counters, pacer, stop: what every job is handed.
    pub context: JobContext,
    /// Continue an interrupted export: customers already in the file are not read again.
    pub resume: bool,
    /// Keep only rows for this qualification, plus one bare row per customer lacking it.
    pub qualification: Option<Qualification>,
    /// Where access tokens come from.
    pub credentials: Credentials,
}

/// How an export went.
pub struct ExportReport {
    /// How the export ended.
    pub ending: Ending,
    /// Customers written by this run.
    pub customers: u64,
    /// Customers kept from the earlier file by `--resume`.
    pub carried_over: u64,
    /// Rows written.
    pub rows: u64,
    /// Customers whose qualifications could not be read (written with empty vetting columns).
    pub unread: u64,
    /// List pages read.
    pub pages: u64,
    /// The list could not be read to its end (the customers before are in the file).
    pub list_error: Option<String>,
}

impl JobReport for ExportReport {
    fn ending(&self) -> &Ending {
        &self.ending
    }

    fn incomplete(&self) -> bool {
        self.unread > 0 || self.list_error.is_some()
    }
}

/// One row of the export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportRow {
    /// The customer tenant id.
    pub customer_id: String,
    /// Its company name.
    pub company_name: String,
    /// Its primary domain.
    pub domain: String,
    /// The qualification held; empty for a customer holding none (or, with `--qualification`,
    /// lacking it) and for one whose qualifications could not be read.
    pub qualification: String,
    /// `vettingStatus`.
    pub vetting_status: Option<String>,
    /// `vettingReason`.
    pub vetting_reason: Option<String>,
    /// `vettingCreateDate`.
    pub vetting_create_date: Option<String>,
}

/// A customer's rows, written together.
struct CustomerRows {
    rows: Vec<ExportRow>,
    /// Why the qualifications could not be read, when they could not.
    error: Option<String>,
}

/// Runs an export to the end (or until `stop`).
pub async fn execute(job: ExportJob) -> Result<ExportReport, JobError> {
    let ExportJob {
        context:
            JobContext {
                output: output_path,
                force,
                config,
                stats,
                throttle,
                stop,
            },
        resume,
        qualification,
        credentials,
    } = job;
    if resume && output_path == "-" {
        return Err(JobError::Config(
            "--resume needs a file for --output (it reads it again)".into(),
        ));
    }
    // One writer per output file: the lock is taken before any request is sent and before the
    // output is created; it is held (by `_lock`) until the export returns.
    let _lock = crate::results::lock::lock_output(&output_path, || {
        if resume {
            Ok(())
        } else {
            output::check_target(&output_path, force)
        }
    })?;
    let fatal = Arc::new(crate::partner_center::fatal::FatalStop::new(stop.clone()));
    let (client, _) = Client::connect(
        &config.endpoint(),
        credentials,
        throttle.clone(),
        stats.clone(),
        fatal.clone(),
    )
    .await?;
    let client = Arc::new(client);
    // The pacer measures the quota from here, not from before the sign-in and pre-flight.
    throttle.begin();
    let started = Instant::now();

    // The first page is read before the output exists: a partner whose list cannot be read
    // (no permission, wrong cloud) stops here with nothing written.
    let first = tokio::select! {
        biased;
        _ = stop.wait() => None,
        page = fetch_page(&client, None) => Some(page),
    };
    let first = match first {
        None => {
            return Ok(ExportReport {
                ending: Ending::read(
                    stats,
                    &throttle,
                    true,
                    started.elapsed(),
                    fatal.cause().cloned(),
                ),
                customers: 0,
                carried_over: 0,
                rows: 0,
                unread: 0,
                pages: 0,
                list_error: None,
            })
        }
        Some(Ok(page)) => page,
        Some(Err(error)) => {
            return Err(JobError::Preflight(format!(
                "the customer list could not be read: {}",
                error.reason()
            )))
        }
    };

    let output_error = |path: &Path, source: std::io::Error| ResultsError::OutputIo {
        path: path.display().to_string(),
        source,
    };
    let unread_file = (output_path != "-").then(|| unread_path(&output_path));
    let carried = if resume && Path::new(&output_path).exists() {
        let path = std::path::PathBuf::from(&output_path);
        crate::input::source::off_runtime(&output_path, move || prepare_resume(&path)).await?
    } else {
        Carried::default()
    };
    let writer = if resume && Path::new(&output_path).exists() {
        let file = OpenOptions::new()
            .append(true)
            .open(&output_path)
            .map_err(|e| output_error(Path::new(&output_path), e))?;
        ExportWriter::without_header(output::Sink::File(BufWriter::new(file)))
    } else {
        let sink = output::create(&output_path, force || resume)?;
        ExportWriter::with_header(sink).map_err(|e| output_error(Path::new(&output_path), e))?
    };
    // The customers whose qualifications could not be read, one id a line: their rows look like
    // those of customers holding nothing, so `--resume` needs this list to read them again.
    // Started empty: a resume has just dropped the earlier ones' rows from the file.
    let unread_log = match &unread_file {
        Some(path) => Some(BufWriter::new(
            File::create(path).map_err(|e| output_error(path, e))?,
        )),
        None => None,
    };
    let (work_tx, work_rx) = async_channel::bounded::<ListedCustomer>(config.concurrency * 2);
    let (result_tx, result_rx) = mpsc::channel::<CustomerRows>(config.concurrency * 4 + 16);
    let aborted = Arc::new(AtomicBool::new(false));
    let unread = Arc::new(AtomicU64::new(0));

    let lister = {
        let (client, stop, aborted) = (client.clone(), stop.clone(), aborted.clone());
        let done = carried.done;
        tokio::spawn(async move {
            list_customers(&client, first, &done, work_tx, &stop, &aborted).await
        })
    };
    let writer_task = spawn_writer(
        output_path == "-",
        result_rx,
        ExportSink {
            writer,
            unread_log,
            customers: 0,
            rows: 0,
        },
        stats.clone(),
        aborted.clone(),
    );
    let mut workers = spawn_pool(
        config.concurrency,
        work_rx.clone(),
        result_tx.clone(),
        &stop,
        {
            let unread = unread.clone();
            move |customer: ListedCustomer| {
                let (client, unread) = (client.clone(), unread.clone());
                async move {
                    // A panic while reading one customer must not lose its row: it becomes an
                    // unread customer, with the panic as its error (and exit code 1).
                    let bare = bare_row(&customer);
                    let rows = match crate::engine::unwind::catch(export_customer(
                        &client,
                        customer,
                        qualification,
                    ))
                    .await
                    {
                        Ok(rows) => rows,
                        Err(message) => CustomerRows {
                            rows: vec![bare],
                            error: Some(format!("internal error: {message}")),
                        },
                    };
                    if let Some(error) = &rows.error {
                        unread.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            target: crate::engine::decide::ROW_LOG_TARGET,
                            customer_id = %rows.rows[0].customer_id,
                            error = %error,
                            "qualifications not read"
                        );
                    }
                    rows
                }
            }
        },
    );
    drop(result_tx);
    drop(work_rx);
    drain_workers(&mut workers, &stop, config.shutdown_grace).await;
    let listed = lister.await.unwrap_or_else(|e| ListEnd {
        error: Some(format!("the page reader stopped: {e}")),
        ..ListEnd::default()
    });
    let ExportSink {
        customers, rows, ..
    } = finish_writer(writer_task, &output_path).await?;
    let unread = unread.load(Ordering::Relaxed);
    if let (Some(path), 0) = (&unread_file, unread) {
        // Nothing to read again.
        let _ = std::fs::remove_file(path);
    }
    Ok(ExportReport {
        ending: Ending::read(
            stats,
            &throttle,
            stop.requested(),
            started.elapsed(),
            fatal.cause().cloned(),
        ),
        customers,
        carried_over: carried.customers,
        rows,
        unread,
        pages: listed.pages,
        list_error: listed.error,
    })
}

/// How the page reader ended.
#[derive(Default)]
struct ListEnd {
    pages: u64,
    error: Option<String>,
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
enum PageError {
    /// A resend was refused with code 2000: the service spent the token on an attempt whose
    /// answer was lost (cut off, timed out) and does not replay the page. The list can only be
    /// read again from its first page.
    #[error("{0}")]
    TokenSpent(String),
    /// The service answered with an error, or did not answer (the reason says which).
    #[error("{0}")]
    Failed(String),
    /// The page or its next link is unusable.
    #[error(transparent)]
    List(#[from] customers::ListError),
}

impl PageError {
    /// The reason with its causes, for the summary and the log.
    fn reason(&self) -> String {
        crate::domain::error::chain(self)
    }
}

/// The error code for an unknown or spent continuation token.
const INVALID_CONTINUATION: &str = "2000";

/// Most times one export reads the list again from its first page after a spent token.
const MAX_RESTARTS: u32 = 3;

/// Reads one page (the first when `next` is `None`), through the pool's pacer and retries.
async fn fetch_page(client: &Client, next: Option<&NextPage>) -> Result<Page, PageError> {
    let (request, headers) = match next {
        None => (
            customers::first_page_request(customers::PAGE_SIZE),
            Vec::new(),
        ),
        Some(next) => next.request()?,
    };
    let exchange = client
        .send_capped(
            &request,
            crate::partner_center::client::new_uuid(),
            &headers,
            customers::MAX_PAGE_BYTES,
        )
        .await;
    match &exchange.reply {
        Reply::Answer { status, body } if (200..300).contains(status) => {
            customers::parse_page(body).map_err(PageError::from)
        }
        Reply::Answer { status, body } => {
            let reason = answer_error("GET /v1/customers", *status, body, exchange.attempts);
            let spent = next.is_some()
                && exchange.attempts >= 2
                && *status == 400
                && api::parse_error_body(body).code.as_deref() == Some(INVALID_CONTINUATION);
            Err(if spent {
                PageError::TokenSpent(reason)
            } else {
                PageError::Failed(reason)
            })
        }
        Reply::Transport(reason) | Reply::Token(reason) | Reply::Stopped(reason) => {
            Err(PageError::Failed(format!(
                "{} (after {} attempt(s))",
                api::sanitize(reason),
                exchange.attempts
            )))
        }
    }
}

fn answer_error(what: &str, status: u16, body: &[u8], attempts: u32) -> String {
    let error = api::parse_error_body(body);
    let code = error
        .code
        .map(|c| format!(" (code {c})"))
        .unwrap_or_default();
    let message = error.message.map(|m| format!(": {m}")).unwrap_or_default();
    format!("{what} answered {status}{code}{message} after {attempts} attempt(s)")
}

/// A customer as the page reader tells it from the others: by GUID, or by the id as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ListedKey {
    Id(CustomerId),
    Raw(String),
}

impl ListedKey {
    fn of(customer: &ListedCustomer) -> Self {
        customer
            .parsed
            .map_or_else(|| ListedKey::Raw(customer.id.clone()), ListedKey::Id)
    }
}

/// Feeds the customers of `page` and of every later page to the workers. The channel is
/// bounded, so the next page is read only once the workers have room for its customers.
///
/// Each customer is fed once: the ids listed so far are kept (an id and a pass number each),
/// so a list read again from its first page (after a spent token) skips what it already fed,
/// and a page holding only customers already listed in this pass (a service going round in
/// circles) ends the listing with an error instead of writing them again.
async fn list_customers(
    client: &Client,
    first: Page,
    done: &HashSet<CustomerId>,
    work_tx: async_channel::Sender<ListedCustomer>,
    stop: &Stop,
    aborted: &AtomicBool,
) -> ListEnd {
    let mut end = ListEnd {
        pages: 1,
        error: None,
    };
    let mut page = first;
    let mut listed = 0u64;
    let mut empty_in_a_row = 0u32;
    // Customer -> the pass (0, then 1 after the first restart, ...) it was last seen on.
    let mut seen: HashMap<ListedKey, u32> = HashMap::new();
    let mut pass = 0u32;
    loop {
        empty_in_a_row = if page.customers.is_empty() {
            empty_in_a_row + 1
        } else {
            0
        };
        if !page.customers.is_empty()
            && page
                .customers
                .iter()
                .all(|c| seen.get(&ListedKey::of(c)) == Some(&pass))
        {
            end.error = Some(format!(
                "page {} of the customer list holds only customers already listed on earlier pages; the list goes round in circles, stopped following it",
                end.pages
            ));
            return end;
        }
        for customer in page.customers {
            if stop.requested() || aborted.load(Ordering::Relaxed) {
                return end;
            }
            if seen.insert(ListedKey::of(&customer), pass).is_some() {
                // Fed already (earlier in this pass, or before a restart).
                continue;
            }
            listed += 1;
            if customer.parsed.is_some_and(|id| done.contains(&id)) {
                // Already in the file from the run being resumed.
                continue;
            }
            if work_tx.send(customer).await.is_err() {
                return end;
            }
        }
        tracing::info!(
            page = end.pages,
            customers = listed,
            "customer list page read"
        );
        let Some(next) = page.next else {
            return end;
        };
        if empty_in_a_row >= MAX_EMPTY_PAGES {
            end.error = Some(format!(
                "the customer list returned {empty_in_a_row} empty pages in a row, each with a next link; stopped following it"
            ));
            return end;
        }
        let mut fetched = tokio::select! {
            biased;
            _ = stop.wait() => return end,
            fetched = fetch_page(client, Some(&next)) => fetched,
        };
        if let Err(PageError::TokenSpent(reason)) = &fetched {
            if pass < MAX_RESTARTS {
                pass += 1;
                tracing::warn!(
                    page = end.pages + 1,
                    %reason,
                    "the service spent the continuation token on an answer that was lost; reading the customer list again from its first page (customers already listed are skipped)"
                );
                fetched = tokio::select! {
                    biased;
                    _ = stop.wait() => return end,
                    fetched = fetch_page(client, None) => fetched,
                };
            }
        }
        match fetched {
            Ok(next_page) => {
                end.pages += 1;
                page = next_page;
            }
            Err(error) => {
                let reason = error.reason();
                tracing::error!(page = end.pages + 1, %reason, "customer list page not read");
                end.error = Some(format!(
                    "page {} of the customer list could not be read ({listed} customers listed before it): {reason}",
                    end.pages + 1
                ));
                return end;
            }
        }
    }
}

/// Reads one customer's qualifications and turns them into its rows.
/// A customer's row before its qualifications are known.
fn bare_row(customer: &ListedCustomer) -> ExportRow {
    ExportRow {
        customer_id: customer
            .parsed
            .map_or_else(|| customer.id.clone(), |id| id.to_lower_string()),
        company_name: customer.company_name.clone(),
        domain: customer.domain.clone(),
        ..ExportRow::default()
    }
}

async fn export_customer(
    client: &Client,
    customer: ListedCustomer,
    only: Option<Qualification>,
) -> CustomerRows {
    let bare = bare_row(&customer);
    let Some(id) = customer.parsed else {
        return CustomerRows {
            rows: vec![bare],
            error: Some(format!("customer id {:?} is not a GUID", customer.id)),
        };
    };
    let exchange = client
        .send(
            &api::list_request(id),
            crate::partner_center::client::new_uuid(),
        )
        .await;
    let records = match &exchange.reply {
        // The reason ends up in one results cell, so it is rendered to text here.
        Reply::Answer { status, body } if (200..300).contains(status) => {
            read_qualifications(body).map_err(|e| e.to_string())
        }
        Reply::Answer { status, body } => Err(answer_error(
            "GET qualifications",
            *status,
            body,
            exchange.attempts,
        )),
        Reply::Transport(reason) | Reply::Token(reason) | Reply::Stopped(reason) => Err(format!(
            "{} (after {} attempt(s))",
            api::sanitize(reason),
            exchange.attempts
        )),
    };
    match records {
        Ok(records) => CustomerRows {
            rows: rows_for(bare, records, only),
            error: None,
        },
        Err(reason) => CustomerRows {
            rows: vec![bare],
            error: Some(reason),
        },
    }
}

/// The one place the export reads a qualifications answer: every documented shape is the
/// parser's business, so a better parser is swapped in here alone.
fn read_qualifications(body: &[u8]) -> Result<Vec<QualificationRecord>, api::ShapeError> {
    api::parse_qualification_list(body)
}

/// One row per qualification held (only `only`, when given); one bare row when none is.
fn rows_for(
    bare: ExportRow,
    records: Vec<QualificationRecord>,
    only: Option<Qualification>,
) -> Vec<ExportRow> {
    let mut rows: Vec<ExportRow> = records
        .into_iter()
        .filter_map(|record| {
            let name = record.qualification.trim();
            // `None` is the service's word for holding nothing.
            if name.is_empty() || name.eq_ignore_ascii_case("None") {
                return None;
            }
            let parsed = Qualification::parse(name).ok();
            if only.is_some() && parsed != only {
                return None;
            }
            Some(ExportRow {
                qualification: parsed
                    .map_or_else(|| api::sanitize(name), |q| q.as_str().to_string()),
                vetting_status: record.vetting_status.map(api::sanitize_owned),
                vetting_reason: record.vetting_reason.map(api::sanitize_owned),
                vetting_create_date: record.vetting_create_date.map(api::sanitize_owned),
                ..bare.clone()
            })
        })
        .collect();
    if rows.is_empty() {
        rows.push(bare);
    }
    rows
}

/// Where an export to `output` lists the customers it could not read.
pub fn unread_path(output: &str) -> PathBuf {
    PathBuf::from(format!("{output}.unread"))
}

/// What `--resume` keeps from an earlier export.
#[derive(Default)]
struct Carried {
    /// Customers whose rows stay in the file and are not read again.
    done: HashSet<CustomerId>,
    /// How many.
    customers: u64,
}

/// Makes an interrupted export's file safe to append to, and says which customers it holds.
///
/// The file is rewritten (through a temporary file and a rename) without: a torn last line; the
/// last customer's rows, which a killed writer may have left incomplete (each customer's rows
/// are written together, so only the last can be); and the rows of customers listed in the
/// `.unread` file, which are read again. Memory holds one id per customer kept.
fn prepare_resume(path: &Path) -> Result<Carried, JobError> {
    use std::io::Read as _;
    let bad = |reason: String| {
        JobError::from(InputFileError::Input {
            path: path.display().to_string(),
            reason,
        })
    };
    let io = |source: std::io::Error| InputFileError::InputIo {
        path: path.display().to_string(),
        source,
    };
    let unread: HashSet<String> =
        match std::fs::read_to_string(unread_path(&path.to_string_lossy())) {
            Ok(text) => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(io(e).into()),
        };
    let mut file = File::open(path).map_err(io)?;
    let complete = output::complete_len(&mut file).map_err(io)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(std::io::BufReader::new(file).take(complete));
    let mut record = csv::ByteRecord::new();
    let header_ok = reader.read_byte_record(&mut record).unwrap_or(false)
        && record
            .iter()
            .eq(EXPORT_COLUMNS.iter().map(|c| c.as_bytes()));
    if !header_ok {
        return Err(bad(
            "--resume: not a pc-qualify export (its first line is not the export header)".into(),
        ));
    }
    // A refusal met while copying is kept here, and the copy fails, so the file stays as it was.
    let mut refused = None;
    // The reader moves into `copy_kept`, which drops it before the rename: Windows refuses to
    // rename over a file that is still open. The rewritten file keeps the old one's mode.
    let mode = crate::results::resume::file_mode(path);
    crate::domain::atomic::replace(path, mode, |file| {
        copy_kept(reader, file, &unread, path).map_err(|err| {
            let failed = std::io::Error::other(err.to_string());
            refused = Some(err);
            failed
        })
    })
    .map_err(|e| refused.take().unwrap_or_else(|| io(e).into()))
}

/// The copy [`prepare_resume`] makes, from the rows after the header to `file`.
fn copy_kept(
    mut reader: csv::Reader<impl std::io::Read>,
    file: &mut File,
    unread: &HashSet<String>,
    path: &Path,
) -> Result<Carried, JobError> {
    let io = |source: std::io::Error| InputFileError::InputIo {
        path: path.display().to_string(),
        source,
    };
    let mut record = csv::ByteRecord::new();
    let mut carried = Carried::default();
    let mut writer = ExportWriter::with_header(BufWriter::new(file)).map_err(io)?;
    let mut block: Vec<csv::ByteRecord> = Vec::new();
    let mut keep =
        |block: &mut Vec<csv::ByteRecord>, writer: &mut ExportWriter<_>| -> std::io::Result<()> {
            let Some(first) = block.first() else {
                return Ok(());
            };
            let id = String::from_utf8_lossy(&first[0]).into_owned();
            if !unread.contains(&id) {
                for row in block.iter() {
                    writer.write_raw(row)?;
                }
                if let Some(parsed) = CustomerId::parse(&id) {
                    carried.done.insert(parsed);
                }
                carried.customers += 1;
            }
            block.clear();
            Ok(())
        };
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) if record.len() == EXPORT_COLUMNS.len() => {
                if block.first().is_some_and(|b| b[0] != record[0]) {
                    keep(&mut block, &mut writer).map_err(io)?;
                }
                block.push(record.clone());
            }
            Ok(true) => {
                return Err(InputFileError::Input {
                    path: path.display().to_string(),
                    reason: format!(
                        "--resume: line {} has {} fields, an export row has {}",
                        record.position().map_or(0, |p| p.line()),
                        record.len(),
                        EXPORT_COLUMNS.len()
                    ),
                }
                .into())
            }
            Err(source) => {
                return Err(JobError::ExportResumeRead {
                    path: path.display().to_string(),
                    source,
                })
            }
        }
    }
    // `block` now holds the last customer's rows: dropped, and that customer read again.
    writer.flush().map_err(io)?;
    Ok(carried)
}

/// Writes export rows as CSV with the results file's hygiene (see [`output::push_text`]).
pub struct ExportWriter<W: std::io::Write> {
    csv: csv::Writer<W>,
    record: csv::ByteRecord,
}

impl<W: std::io::Write> ExportWriter<W> {
    /// A writer that starts with the header row.
    pub fn with_header(inner: W) -> std::io::Result<Self> {
        let mut writer = Self::without_header(inner);
        writer.csv.write_record(EXPORT_COLUMNS).map_err(csv_to_io)?;
        Ok(writer)
    }

    /// A writer that appends to a file that already has its header.
    pub fn without_header(inner: W) -> Self {
        ExportWriter {
            csv: Self::builder().from_writer(inner),
            record: csv::ByteRecord::new(),
        }
    }

    fn builder() -> csv::WriterBuilder {
        let mut builder = csv::WriterBuilder::new();
        // The sink buffers; a flush must reach the file, not stop in the csv crate's buffer.
        builder
            .buffer_capacity(256)
            .terminator(csv::Terminator::Any(b'\n'));
        builder
    }

    /// Copies a row read back from an earlier export (its cells are already defused).
    fn write_raw(&mut self, record: &csv::ByteRecord) -> std::io::Result<()> {
        self.csv.write_byte_record(record).map_err(csv_to_io)
    }

    /// Writes one row (buffered).
    pub fn write(&mut self, row: &ExportRow) -> std::io::Result<()> {
        let record = &mut self.record;
        record.clear();
        push_text(record, &row.customer_id);
        push_text(record, &row.company_name);
        push_text(record, &row.domain);
        push_text(record, &row.qualification);
        push_text(record, row.vetting_status.as_deref().unwrap_or(""));
        push_text(record, row.vetting_reason.as_deref().unwrap_or(""));
        push_text(record, row.vetting_create_date.as_deref().unwrap_or(""));
        self.csv.write_byte_record(record).map_err(csv_to_io)
    }

    /// Pushes everything written so far to the sink.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.csv.flush()
    }
}

/// The export file for the one writer task: each customer's rows, with the customers whose
/// qualifications could not be read listed in the `.unread` file first.
struct ExportSink {
    writer: ExportWriter<output::Sink>,
    unread_log: Option<BufWriter<File>>,
    customers: u64,
    rows: u64,
}

impl RowSink for ExportSink {
    type Item = CustomerRows;

    fn write(&mut self, batch: CustomerRows, stats: &Stats) -> std::io::Result<()> {
        if let (Some(log), Some(_)) = (&mut self.unread_log, &batch.error) {
            // On file before the customer's row can be: a resume must never take an unread
            // customer for one holding nothing.
            writeln!(log, "{}", batch.rows[0].customer_id)?;
            log.flush()?;
        }
        for row in &batch.rows {
            self.writer.write(row)?;
            if !row.qualification.is_empty() {
                stats.record_vetting(row.vetting_status.as_deref());
            }
            self.rows += 1;
        }
        self.customers += 1;
        stats.record_customer();
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(q: &str, status: Option<&str>) -> QualificationRecord {
        QualificationRecord {
            qualification: q.into(),
            vetting_status: status.map(str::to_string),
            vetting_reason: None,
            vetting_create_date: None,
        }
    }

    fn bare() -> ExportRow {
        ExportRow {
            customer_id: "c".into(),
            company_name: "Name".into(),
            domain: "d.example".into(),
            ..ExportRow::default()
        }
    }

    #[test]
    fn every_held_qualification_gets_a_row_and_none_gets_one_bare_row() {
        let rows = rows_for(
            bare(),
            vec![
                record("education", Some("Denied")),
                record("StateOwnedEntity", None),
                record("Nonprofit", Some("Approved")),
            ],
            None,
        );
        let names: Vec<&str> = rows.iter().map(|r| r.qualification.as_str()).collect();
        assert_eq!(names, ["Education", "StateOwnedEntity", "Nonprofit"]);
        assert_eq!(rows[0].vetting_status.as_deref(), Some("Denied"));
        assert!(rows.iter().all(|r| r.company_name == "Name"));
        assert_eq!(rows_for(bare(), vec![], None), vec![bare()]);
        assert_eq!(
            rows_for(bare(), vec![record("None", None)], None),
            vec![bare()]
        );
    }

    #[test]
    fn one_qualification_keeps_its_rows_and_a_bare_row_for_customers_lacking_it() {
        let held = vec![
            record("Education", Some("Approved")),
            record("StateOwnedEntity", None),
        ];
        let rows = rows_for(bare(), held.clone(), Some(Qualification::Education));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].qualification, "Education");
        let rows = rows_for(bare(), held, Some(Qualification::GovernmentCommunityCloud));
        assert_eq!(rows, vec![bare()]);
    }

    #[test]
    fn resume_keeps_whole_customers_and_drops_the_last_and_the_unread() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("export.csv");
        let id = |n: u32| format!("aaaaaaaa-0000-4000-8000-{n:012}");
        let header = EXPORT_COLUMNS.join(",");
        let text = format!(
            "{header}\n\
             {one},\"One, Inc\",one.example,Education,Approved,,\n\
             {two},Two,two.example,Education,Denied,'-reason,\n\
             {two},Two,two.example,StateOwnedEntity,,,\n\
             {three},Three,three.example,,,,\n\
             {four},Four,four.example,,,,\n\
             {five},Fi",
            one = id(1),
            two = id(2),
            three = id(3),
            four = id(4),
            five = id(5),
        );
        std::fs::write(&path, text).expect("write");
        std::fs::write(unread_path(&path.to_string_lossy()), format!("{}\n", id(3)))
            .expect("write unread");
        let carried = prepare_resume(&path).expect("resumable");
        assert_eq!(carried.customers, 2);
        let mut done: Vec<String> = carried.done.iter().map(|c| c.to_lower_string()).collect();
        done.sort();
        assert_eq!(done, [id(1), id(2)]);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!(
                "{header}\n\
                 {one},\"One, Inc\",one.example,Education,Approved,,\n\
                 {two},Two,two.example,Education,Denied,'-reason,\n\
                 {two},Two,two.example,StateOwnedEntity,,,\n",
                one = id(1),
                two = id(2),
            ),
            "torn line, last customer (4) and unread customer (3) dropped; cells kept verbatim"
        );
        std::fs::write(&path, "row,customer_id\n1,x\n").expect("write");
        assert!(prepare_resume(&path).is_err(), "not an export");
    }

    #[test]
    fn rows_are_written_in_column_order_and_defused() {
        let mut writer = ExportWriter::with_header(Vec::new()).expect("header");
        writer
            .write(&ExportRow {
                customer_id: "c".into(),
                company_name: "=cmd|' /C calc'!A0".into(),
                domain: "x, y".into(),
                qualification: "Education".into(),
                vetting_status: Some("Denied".into()),
                vetting_reason: Some("-bad".into()),
                vetting_create_date: None,
            })
            .expect("write");
        writer.flush().expect("flush");
        let text = String::from_utf8(writer.csv.into_inner().expect("inner")).expect("utf8");
        assert_eq!(
            text,
            "customer_id,company_name,domain,qualification,vetting_status,vetting_reason,vetting_create_date\n\
             c,'=cmd|' /C calc'!A0,\"x, y\",Education,Denied,'-bad,\n"
        );
    }
}
