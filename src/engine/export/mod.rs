//! `pc-qualify export`: every customer of the partner and the qualifications it holds, as CSV.
//!
//! A page reader follows the customer list page by page and feeds customers into a bounded
//! channel; the rate-limited worker pool reads each customer's qualifications (with retries);
//! a writer records each customer's rows as they come. Only one page and the channels' worth of
//! customers are ever held, however many customers the partner has.

mod listing;

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::domain::atomic::{self, Replacement};
use crate::domain::error::ChainExt as _;
use crate::domain::model::{CustomerId, Qualification, QualificationRecord};
use crate::domain::stats::Stats;
use crate::engine::pool::{run_pool, RowSink};
use crate::engine::{Ending, JobContext, JobError};
use crate::input::InputFileError;
use crate::partner_center::api;
use crate::partner_center::auth::Credentials;
use crate::partner_center::client::Client;
use crate::partner_center::customers::ListedCustomer;
use crate::results::output::{self, push_text, CsvRow, CsvWriter};
use crate::results::schema::EXPORT_COLUMNS;
use crate::results::ResultsError;

use listing::*;

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
#[derive(Default)]
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
    /// A forced export that did not complete left the earlier file as it was (and wrote none).
    pub kept_earlier: bool,
}

/// A customer's rows, written together.
struct CustomerRows {
    rows: Vec<ExportRow>,
    /// Why the qualifications could not be read, when they could not.
    error: Option<String>,
}

/// Runs an export to the end (or until a stop).
pub async fn execute(job: ExportJob) -> Result<ExportReport, JobError> {
    let ExportJob {
        context,
        resume,
        qualification,
        credentials,
    } = job;
    let output_path = &context.output;
    let force = context.force;
    if resume && output_path == "-" {
        return Err(JobError::Config(
            "--resume needs a file for --output (it reads it again)".into(),
        ));
    }
    let _lock = crate::results::lock::lock_output(output_path, force, resume)?;
    // The sign-in yields to a stop (the tool handles Ctrl-C itself); nothing is written yet.
    let Some((client, _)) = context.unless_stopped(context.connect(credentials)).await? else {
        return Ok(ExportReport {
            ending: context.ending(std::time::Duration::ZERO, false),
            ..ExportReport::default()
        });
    };
    let started = context.begin();

    // The first page is read before the output exists: a partner whose list cannot be read
    // (no permission, wrong cloud) stops here with nothing written.
    let first = async {
        let page = fetch_page(&client, None).await.map_err(|e| e.chain());
        page.map_err(|e| JobError::Preflight(format!("the customer list could not be read: {e}")))
    };
    let Some(first) = context.unless_stopped(first).await? else {
        let ending = context.ending(started.elapsed(), false);
        return Ok(ExportReport {
            ending,
            ..ExportReport::default()
        });
    };

    let unread_file = (output_path != "-").then(|| unread_path(output_path));
    let carried = if resume && Path::new(output_path).exists() {
        let path = std::path::PathBuf::from(output_path);
        crate::input::source::off_runtime(output_path, move || prepare_resume(&path)).await?
    } else {
        Carried::default()
    };
    let replaces = force && !resume && Path::new(output_path).is_file();
    let writer = if resume && Path::new(output_path).exists() {
        ExportWriter::without_header(output::append(output_path)?)
    } else {
        // A forced export over an earlier one writes beside it and replaces it only once
        // complete, so a failed or stopped export leaves the earlier file byte for byte. A first
        // export writes in place, so that --resume can continue it.
        let sink = if replaces {
            output::replacing(output_path, true)?
        } else {
            output::create(output_path, force || resume)?
        };
        ExportWriter::with_header(sink).map_err(|e| ResultsError::output_io(output_path, e))?
    };
    // The customers whose qualifications could not be read, one id a line: their rows look like
    // those of customers holding nothing, so `--resume` needs this list to read them again.
    let unread_log = unread_file.as_ref().map(|path| {
        UnreadLog::open(path, replaces)
            .map_err(|e| ResultsError::output_io(path.display().to_string(), e))
    });
    let unread_log = unread_log.transpose()?;
    let unread = Arc::new(AtomicU64::new(0));
    let sink = ExportSink {
        writer,
        unread_log,
        customers: 0,
        rows: 0,
    };
    let lister = {
        let (client, done) = (client.clone(), carried.done);
        move |feeder| {
            tokio::spawn(async move { list_customers(&client, first, &done, feeder).await })
        }
    };
    let counter = unread.clone();
    let (listed, written) = run_pool(&context, sink, lister, move |customer: ListedCustomer| {
        let (client, unread) = (client.clone(), counter.clone());
        async move {
            // A panic while reading one customer must not lose its row: it becomes an
            // unread customer, with the panic as its error (and exit code 1).
            let bare = bare_row(&customer);
            let read = export_customer(&client, &customer, &bare, qualification);
            let rows = crate::engine::unwind::catch(read, |message| CustomerRows {
                rows: vec![bare.clone()],
                error: Some(format!("internal error: {message}")),
            })
            .await;
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
    })
    .await;
    let listed = match listed {
        Some(Ok(listed)) => listed,
        Some(Err(e)) => ListEnd {
            error: Some(format!("the page reader stopped: {e}")),
            ..ListEnd::default()
        },
        None => ListEnd {
            error: Some("stopped while the customer list was being read".into()),
            ..ListEnd::default()
        },
    };
    let ExportSink {
        writer,
        unread_log,
        customers,
        rows,
    } = written?;
    let unread = unread.load(Ordering::Relaxed);
    let ending = context.ending(started.elapsed(), unread > 0 || listed.error.is_some());
    let complete = listed.error.is_none() && !ending.interrupted && ending.fatal.is_none();
    if replaces && complete {
        commit_forced(
            writer,
            unread_log,
            unread_file.as_deref(),
            unread,
            output_path,
        )?;
    } else if let (Some(path), false, 0) = (&unread_file, replaces, unread) {
        // Nothing to read again (the list's handle is closed first: Windows keeps an open file).
        drop(unread_log);
        let _ = std::fs::remove_file(path);
    }
    // Not complete, a forced export leaves the earlier export and its list as they were: the new
    // list (a temporary file) goes with the new export.
    let kept_earlier = replaces && !complete;
    Ok(ExportReport {
        ending,
        customers,
        carried_over: carried.customers,
        rows,
        unread,
        pages: listed.pages,
        list_error: listed.error,
        kept_earlier,
    })
}

/// A customer's row before its qualifications are known.
fn bare_row(customer: &ListedCustomer) -> ExportRow {
    ExportRow {
        customer_id: listed_id(customer),
        company_name: customer.company_name.clone(),
        domain: customer.domain.clone(),
        ..ExportRow::default()
    }
}

/// Reads one customer's qualifications and turns them into its rows, each `bare` with what was
/// read.
async fn export_customer(
    client: &Client,
    customer: &ListedCustomer,
    bare: &ExportRow,
    only: Option<Qualification>,
) -> CustomerRows {
    // The reason ends up in one results cell, so it is rendered to text here.
    let records = match customer.parsed {
        None => Err(format!("customer id {:?} is not a GUID", customer.id)),
        Some(id) => {
            let exchange = crate::engine::decide::read_list(client, id).await;
            answer_body(&exchange, "GET qualifications")
                .and_then(|body| api::parse_qualification_list(body).map_err(|e| e.to_string()))
        }
    };
    match records {
        Ok(records) => CustomerRows {
            rows: rows_for(bare, records, only),
            error: None,
        },
        Err(reason) => CustomerRows {
            rows: vec![bare.clone()],
            error: Some(reason),
        },
    }
}

/// One row per qualification held (only `only`, when given); one bare row when none is.
fn rows_for(
    bare: &ExportRow,
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
        rows.push(bare.clone());
    }
    rows
}

/// Puts a forced export that completed in place of the earlier one, and its list of unread
/// customers in place of the earlier list (or removes that list when it has none).
///
/// Two renames cannot be one, so when both exports have a list, the list is first replaced by
/// the two lists together, and when only the new one has, that list goes first: whenever the
/// process dies, the export on disk has a list naming at least its own unread customers. A customer listed needlessly is only read again by
/// `--resume`; one missing would have its empty row taken for a customer holding nothing.
fn commit_forced(
    export: ExportWriter<output::Sink>,
    list: Option<UnreadLog>,
    list_path: Option<&Path>,
    unread: u64,
    output_path: &str,
) -> Result<(), JobError> {
    let list_io = |e| {
        ResultsError::output_io(
            list_path.map_or(String::new(), |p| p.display().to_string()),
            e,
        )
    };
    let mut new_list = match list {
        Some(UnreadLog::Beside(list)) => {
            Some(list.into_inner().map_err(|e| list_io(e.into_error()))?)
        }
        _ => None,
    };
    let earlier = match (list_path, new_list.as_mut(), unread > 0) {
        (Some(path), Some(new), true) => both_lists(path, new).map_err(list_io)?,
        _ => true,
    };
    if !earlier {
        // No earlier list: the new one goes in place before the export, which then never
        // stands without it (beside the earlier export it only costs reads on --resume).
        if let Some(new) = new_list.take() {
            new.commit(true).map_err(list_io)?;
        }
    }
    export
        .into_inner()
        .and_then(output::Sink::commit)
        .map_err(|e| ResultsError::output_io(output_path, e))?;
    match (list_path, new_list) {
        (Some(_), Some(new)) if unread > 0 => new.commit(true).map_err(list_io)?,
        // Nothing to read again.
        (Some(path), _) if unread == 0 => {
            let _ = std::fs::remove_file(path);
        }
        _ => {}
    }
    Ok(())
}

/// Replaces the earlier list at `path`, if there is one, by itself followed by `new`; false
/// when there is none.
fn both_lists(path: &Path, new: &mut Replacement) -> std::io::Result<bool> {
    let earlier = match UnreadLog::earlier(path) {
        Ok(earlier) => earlier,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut both = Replacement::new(path, UnreadLog::MODE)?;
    atomic::copy_bounded(&earlier, &mut both, atomic::LIST_FILE)?;
    // Closed before the rename over it, as Windows requires.
    drop(earlier);
    // A list edited by hand may lack its last line break; an empty line is skipped when read.
    both.write_all(b"\n")?;
    new.copy_to(&mut both, atomic::LIST_FILE)?;
    both.commit(true).map(|()| true)
}

/// Where the customers whose qualifications could not be read are listed as they are met.
enum UnreadLog {
    /// The list itself: a first export's, or a resumed one's (started empty: the resume has just
    /// dropped the earlier unread customers' rows from the file).
    InPlace(BufWriter<File>),
    /// A forced export over an earlier one: the new list, in a temporary file beside the earlier
    /// export's list, which stays as it is unless the new export completes ([`commit_forced`]).
    Beside(BufWriter<Replacement>),
}

impl UnreadLog {
    /// A new list's permission bits (less the umask), as a file created in place gets.
    const MODE: u32 = 0o666;

    fn open(path: &Path, replaces: bool) -> std::io::Result<UnreadLog> {
        if !replaces {
            let mut options = OpenOptions::new();
            options.write(true).create(true).truncate(false);
            let file = atomic::open_side_file(path, &mut options, true)?;
            return Ok(UnreadLog::InPlace(BufWriter::new(file)));
        }
        // A link or a FIFO in the earlier list's place is refused now, before anything is read,
        // as in place; the list is read only once the new export is complete.
        match UnreadLog::earlier(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let replacement = Replacement::new(path, UnreadLog::MODE)?;
        Ok(UnreadLog::Beside(BufWriter::new(replacement)))
    }

    /// The earlier export's list, opened to be read as the tool's own file (no link followed,
    /// a FIFO refused rather than waited on).
    fn earlier(path: &Path) -> std::io::Result<File> {
        atomic::open_side_file(path, OpenOptions::new().read(true), false)
    }
}

impl std::io::Write for UnreadLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            UnreadLog::InPlace(file) => file.write(buf),
            UnreadLog::Beside(replacement) => replacement.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            UnreadLog::InPlace(file) => file.flush(),
            UnreadLog::Beside(replacement) => replacement.flush(),
        }
    }
}

/// The export file for the one writer task: each customer's rows, with the customers whose
/// qualifications could not be read listed in the `.unread` file first.
struct ExportSink {
    writer: ExportWriter<output::Sink>,
    unread_log: Option<UnreadLog>,
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
    let io = |source: std::io::Error| InputFileError::InputIo {
        path: path.display().to_string(),
        source,
    };
    let unread: HashSet<String> =
        match atomic::read_text(&unread_path(&path.to_string_lossy()), atomic::LIST_FILE) {
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
    let header_ok =
        reader.read_byte_record(&mut record).unwrap_or(false) && record == EXPORT_COLUMNS[..];
    if !header_ok {
        let path = path.display().to_string();
        let reason = "--resume: not a pc-qualify export (its first line is not the export header)";
        let reason = reason.to_string();
        return Err(InputFileError::Input { path, reason }.into());
    }
    // The reader moves into `copy_kept`, which drops it before the rename (see `output::rewrite`).
    // A damaged row fails the copy, so the file stays as it was, and is returned as it is.
    output::rewrite(path, |writer| copy_kept(reader, writer, &unread, path)).map_err(|e| {
        match e.downcast::<JobError>() {
            Ok(refused) => refused,
            Err(e) => ResultsError::output_io(path.display().to_string(), e).into(),
        }
    })
}

/// The copy [`prepare_resume`] makes, of the rows after the header, to `writer`; a row the
/// reader refuses (one of other than the header's 7 fields, too) is a [`JobError`] inside the
/// error.
fn copy_kept(
    mut reader: csv::Reader<impl std::io::Read>,
    writer: &mut ExportWriter<impl std::io::Write>,
    unread: &HashSet<String>,
    path: &Path,
) -> std::io::Result<Carried> {
    let mut record = csv::ByteRecord::new();
    let mut carried = Carried::default();
    let mut block: Vec<csv::ByteRecord> = Vec::new();
    let mut keep = |block: &mut Vec<csv::ByteRecord>| -> std::io::Result<()> {
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
    let refused = |source| {
        let path = path.display().to_string();
        std::io::Error::other(JobError::ExportResumeRead { path, source })
    };
    while reader.read_byte_record(&mut record).map_err(refused)? {
        if block.first().is_some_and(|b| b[0] != record[0]) {
            keep(&mut block)?;
        }
        block.push(record.clone());
    }
    // `block` now holds the last customer's rows: dropped, and that customer read again.
    Ok(carried)
}

/// Writes export rows as CSV with the results file's hygiene (see [`output::push_text`]).
pub type ExportWriter<W> = CsvWriter<W, ExportRow>;

impl CsvRow for ExportRow {
    fn header() -> impl Iterator<Item = &'static str> {
        EXPORT_COLUMNS.into_iter()
    }
    fn push_cells(&self, record: &mut csv::ByteRecord) {
        push_text(record, &self.customer_id);
        push_text(record, &self.company_name);
        push_text(record, &self.domain);
        push_text(record, &self.qualification);
        push_text(record, self.vetting_status.as_deref().unwrap_or(""));
        push_text(record, self.vetting_reason.as_deref().unwrap_or(""));
        push_text(record, self.vetting_create_date.as_deref().unwrap_or(""));
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
            &bare(),
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
        assert_eq!(rows_for(&bare(), vec![], None), vec![bare()]);
        assert_eq!(
            rows_for(&bare(), vec![record("None", None)], None),
            vec![bare()]
        );
    }

    #[test]
    fn one_qualification_keeps_its_rows_and_a_bare_row_for_customers_lacking_it() {
        let held = vec![
            record("Education", Some("Approved")),
            record("StateOwnedEntity", None),
        ];
        let rows = rows_for(&bare(), held.clone(), Some(Qualification::Education));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].qualification, "Education");
        let rows = rows_for(&bare(), held, Some(Qualification::GovernmentCommunityCloud));
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
    fn a_refused_row_fails_the_resume_with_its_own_error_and_keeps_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("export.csv");
        let text = format!("{}\nc,one,two\nd,,,,,,\n", EXPORT_COLUMNS.join(","));
        std::fs::write(&path, &text).expect("write");
        let err = prepare_resume(&path).err().expect("refused");
        assert!(matches!(err, JobError::ExportResumeRead { .. }), "{err:?}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
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
        let text = String::from_utf8(writer.into_inner().expect("inner")).expect("utf8");
        assert_eq!(
            text,
            "customer_id,company_name,domain,qualification,vetting_status,vetting_reason,vetting_create_date\n\
             c,'=cmd|' /C calc'!A0,\"x, y\",Education,Denied,'-bad,\n"
        );
    }
}
