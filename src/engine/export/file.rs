//! The export file: its columns, the writer with the results file's hygiene, and what
//! `--resume` keeps of an interrupted export (rewritten whole before anything is appended).

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::domain::model::CustomerId;
use crate::engine::JobError;
use crate::input::InputFileError;
use crate::results::output::{self, push_text, CsvRow, CsvWriter};
pub use crate::results::schema::EXPORT_COLUMNS;
use crate::results::ResultsError;

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
pub(super) struct Carried {
    /// Customers whose rows stay in the file and are not read again.
    pub(super) done: HashSet<CustomerId>,
    /// How many.
    pub(super) customers: u64,
}

/// Makes an interrupted export's file safe to append to, and says which customers it holds.
///
/// The file is rewritten (through a temporary file and a rename) without: a torn last line; the
/// last customer's rows, which a killed writer may have left incomplete (each customer's rows
/// are written together, so only the last can be); and the rows of customers listed in the
/// `.unread` file, which are read again. Memory holds one id per customer kept.
pub(super) fn prepare_resume(path: &Path) -> Result<Carried, JobError> {
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
    let header_ok =
        reader.read_byte_record(&mut record).unwrap_or(false) && record == EXPORT_COLUMNS[..];
    if !header_ok {
        return Err(bad(
            "--resume: not a pc-qualify export (its first line is not the export header)".into(),
        ));
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
pub(super) fn copy_kept(
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
