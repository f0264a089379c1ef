//! Workbook input (`.xlsx`, `.xlsm`, `.xls`, `.ods`) read with calamine: one sheet's rows as the
//! text the operator sees in the spreadsheet, each with the sheet's own row number.
//!
//! What streams: an `.xlsx`/`.xlsm` sheet is read cell by cell from its XML
//! (`Xlsx::worksheet_cells_reader`), so memory holds the shared-string table plus one row at a
//! time. calamine has no such reader for `.xls` or `.ods`: their sheet is loaded whole
//! (`worksheet_range`) and then handed out row by row. Either way the rows are produced on a
//! thread of their own and pass through a small bounded channel, so the consumer reads them as
//! it would read lines of a CSV file.

use std::io::{self, BufReader, Read, Seek};
use std::sync::mpsc;
use std::thread::JoinHandle;

use calamine::{open_workbook_from_rs, Data, Reader, Sheets};

/// The workbook formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkbookKind {
    /// Office Open XML (`.xlsx`, `.xlsm`).
    Xlsx,
    /// The binary Excel 97-2003 format (`.xls`).
    Xls,
    /// OpenDocument spreadsheet (`.ods`).
    Ods,
}

impl WorkbookKind {
    /// The kind `path`'s extension names (case-insensitive), if it is a workbook's.
    pub fn from_path(path: &str) -> Option<WorkbookKind> {
        let ext = std::path::Path::new(path).extension()?.to_str()?;
        match ext.to_ascii_lowercase().as_str() {
            "xlsx" | "xlsm" => Some(WorkbookKind::Xlsx),
            "xls" => Some(WorkbookKind::Xls),
            "ods" => Some(WorkbookKind::Ods),
            _ => None,
        }
    }

    /// How the kind is named in messages.
    pub fn name(self) -> &'static str {
        match self {
            WorkbookKind::Xlsx => "Excel workbook (.xlsx)",
            WorkbookKind::Xls => "Excel 97-2003 workbook (.xls)",
            WorkbookKind::Ods => "OpenDocument spreadsheet (.ods)",
        }
    }
}

/// Why a workbook sheet cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SheetError {
    /// The file is not a readable workbook of its kind.
    #[error("cannot read the {}: {source}", kind.name())]
    Open {
        /// The kind it was read as.
        kind: WorkbookKind,
        #[source]
        source: calamine::Error,
    },
    /// The workbook holds no sheet.
    #[error("the workbook has no sheets")]
    NoSheets,
    /// `--sheet` names no sheet of the workbook.
    #[error(
        "the workbook has no sheet named {wanted:?}; its sheets are: {}",
        quoted(sheets)
    )]
    NoSuchSheet { wanted: String, sheets: Vec<String> },
    /// The sheet could not be read part-way.
    #[error("sheet {sheet:?}: {source}")]
    Read {
        sheet: String,
        #[source]
        source: calamine::Error,
    },
    /// The reader thread could not be started.
    #[error("cannot start the workbook reader: {0}")]
    Thread(#[source] io::Error),
    /// The reader thread panicked (a bug, in calamine or here) part-way through the sheet.
    #[error("sheet {sheet:?}: the workbook reader failed part-way: {message}")]
    Panicked {
        /// The sheet being read.
        sheet: String,
        /// What the panic said.
        message: String,
    },
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row: the sheet's 1-based row number and its cells' text.
pub type SheetRow = (u64, Vec<String>);

/// Excel's column limit (XFD): cells claimed beyond it are ignored rather than letting a
/// malformed file make a row of billions of cells.
const MAX_COLUMNS: u32 = 16_384;

/// Rows handed over in flight at most; enough to keep the reader thread busy.
const CHANNEL_ROWS: usize = 256;

/// Where a reader thread sends its rows, and a read error last.
type RowSender = mpsc::SyncSender<io::Result<SheetRow>>;

/// The rows of one sheet, in order, produced by a reader thread.
pub struct SheetRows {
    /// The sheet's name, for messages.
    sheet: String,
    rx: Option<mpsc::Receiver<io::Result<SheetRow>>>,
    thread: Option<JoinHandle<()>>,
}

impl SheetRows {
    /// Runs `produce` on a reader thread of its own, which sends the rows of `sheet` (and a read
    /// error last) through a small bounded channel.
    pub(super) fn spawn(
        sheet: String,
        produce: impl FnOnce(&RowSender) + Send + 'static,
    ) -> Result<SheetRows, SheetError> {
        let (tx, rx) = mpsc::sync_channel(CHANNEL_ROWS);
        let thread = std::thread::Builder::new()
            .name("pc-qualify-sheet".into())
            .spawn(move || produce(&tx))
            .map_err(SheetError::Thread)?;
        Ok(SheetRows {
            sheet,
            rx: Some(rx),
            thread: Some(thread),
        })
    }
}

impl Iterator for SheetRows {
    type Item = io::Result<SheetRow>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Ok(row) = self.rx.as_ref()?.recv() {
            return Some(row);
        }
        // The channel closed, so the thread has ended or is unwinding: its rows and any read
        // error were sent before. A panic is the one end that sent no error, and the rows it
        // never sent must not pass for the end of the sheet: it becomes the read error, last.
        self.rx = None;
        let panicked = self.thread.take()?.join().err()?;
        Some(Err(io::Error::other(SheetError::Panicked {
            sheet: self.sheet.clone(),
            message: crate::domain::error::panic_message(panicked.as_ref()),
        })))
    }
}

impl Drop for SheetRows {
    fn drop(&mut self) {
        // Closing the channel first makes the thread's next send fail, so it stops; joining it
        // means no reader thread outlives the pass that started it. A panic found here came after
        // the consumer stopped reading, so no row it wanted is lost: nothing to report.
        self.rx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens the workbook in `data` as `kind` (no sheet is read).
pub(super) fn open_book<RS: Read + Seek>(
    data: RS,
    kind: WorkbookKind,
) -> Result<Sheets<BufReader<RS>>, SheetError> {
    let data = BufReader::new(data);
    let opened = match kind {
        WorkbookKind::Xlsx => open_workbook_from_rs(data)
            .map(Sheets::Xlsx)
            .map_err(|e: calamine::XlsxError| calamine::Error::from(e)),
        WorkbookKind::Xls => open_workbook_from_rs(data)
            .map(Sheets::Xls)
            .map_err(|e: calamine::XlsError| calamine::Error::from(e)),
        WorkbookKind::Ods => open_workbook_from_rs(data)
            .map(Sheets::Ods)
            .map_err(|e: calamine::OdsError| calamine::Error::from(e)),
    };
    opened.map_err(|source| SheetError::Open { kind, source })
}

/// Opens the workbook in `data` and starts reading `sheet` (the first sheet when `None`).
/// Returns the sheet's name and its rows; fails when the workbook cannot be opened or has no
/// such sheet (the message lists the sheets).
pub fn open<RS>(
    data: RS,
    kind: WorkbookKind,
    sheet: Option<&str>,
) -> Result<(String, SheetRows), SheetError>
where
    RS: Read + Seek + Send + 'static,
{
    let book = open_book(data, kind)?;
    let names = book.sheet_names();
    let name = match sheet {
        None => names.first().cloned().ok_or(SheetError::NoSheets)?,
        Some(wanted) => names
            .iter()
            .find(|n| n.as_str() == wanted)
            .or_else(|| {
                names
                    .iter()
                    .find(|n| n.trim().eq_ignore_ascii_case(wanted.trim()))
            })
            .cloned()
            .ok_or_else(|| SheetError::NoSuchSheet {
                wanted: wanted.to_string(),
                sheets: names.clone(),
            })?,
    };
    let sheet_name = name.clone();
    let rows = SheetRows::spawn(name.clone(), move |tx| {
        if let Err(source) = produce(book, &sheet_name, tx) {
            let _ = tx.send(Err(io::Error::other(SheetError::Read {
                sheet: sheet_name,
                source,
            })));
        }
    })?;
    Ok((name, rows))
}

/// The consumer went away: stop quietly.
struct Closed;

/// Sends the rows of `name`; `Err` only for a reading failure (a closed channel is not one).
fn produce<RS: Read + Seek>(
    book: Sheets<RS>,
    name: &str,
    tx: &RowSender,
) -> Result<(), calamine::Error> {
    let mut row = Row {
        tx,
        number: None,
        cells: Vec::new(),
    };
    // A closed channel (`Err(Closed)`) means the reader stopped early; nothing to report.
    let _ = match book {
        Sheets::Xlsx(mut book) => {
            let mut cells = book.worksheet_cells_reader(name)?;
            while let Some(cell) = cells.next_cell()? {
                let ((r, c), value) = (cell.get_position(), cell.get_value().clone());
                if row.push(r, c, text(value.into())).is_err() {
                    return Ok(());
                }
            }
            row.flush()
        }
        mut book => {
            let range = book.worksheet_range(name)?;
            // `used_cells` positions are relative to the range's start.
            let (r0, c0) = range.start().unwrap_or((0, 0));
            for (r, c, value) in range.used_cells() {
                let (Some(r), Some(c)) = (
                    u32::try_from(r).ok().and_then(|r| r.checked_add(r0)),
                    u32::try_from(c).ok().and_then(|c| c.checked_add(c0)),
                ) else {
                    continue;
                };
                if row.push(r, c, text(value.clone())).is_err() {
                    return Ok(());
                }
            }
            row.flush()
        }
    };
    Ok(())
}

/// The row being assembled from cells that arrive in row-major order, sent on `tx` once complete.
struct Row<'a> {
    tx: &'a RowSender,
    number: Option<u32>,
    cells: Vec<String>,
}

impl Row<'_> {
    /// Adds the cell at (0-based) row `r`, column `c`, sending the previous row when `r` is new.
    fn push(&mut self, r: u32, c: u32, text: String) -> Result<(), Closed> {
        if self.number != Some(r) {
            self.flush()?;
            self.number = Some(r);
        }
        if text.is_empty() || c >= MAX_COLUMNS {
            return Ok(());
        }
        let c = c as usize; // below MAX_COLUMNS
        if self.cells.len() <= c {
            self.cells.resize(c + 1, String::new());
        }
        self.cells[c] = text;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Closed> {
        if let Some(r) = self.number.take() {
            let cells = std::mem::take(&mut self.cells);
            if !cells.is_empty() {
                self.tx
                    .send(Ok((u64::from(r) + 1, cells)))
                    .map_err(|_| Closed)?;
            }
        }
        Ok(())
    }
}

/// A cell's text as the spreadsheet shows it.
fn text(value: Data) -> String {
    match value {
        Data::Int(i) => i.to_string(),
        // As Excel's General format shows it: `482913`, not `482913.0`; others in their
        // shortest exact form (Display never writes an exponent or a `.0`).
        Data::Float(f) => f.to_string(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s,
        Data::Bool(b) => if b { "TRUE" } else { "FALSE" }.to_string(),
        Data::DateTime(d) => date_text(&d),
        Data::Error(e) => e.to_string(),
        Data::Empty => String::new(),
    }
}

/// A date cell as ISO 8601: `2024-03-01`, or `2024-03-01 14:30:00` when it has a time of day.
fn date_text(d: &calamine::ExcelDateTime) -> String {
    let (y, mo, day, h, mi, s, _ms) = d.to_ymd_hms_milli();
    if (h, mi, s) == (0, 0, 0) {
        format!("{y:04}-{mo:02}-{day:02}")
    } else {
        format!("{y:04}-{mo:02}-{day:02} {h:02}:{mi:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_they_are_shown() {
        let number_text = |f| text(Data::Float(f));
        assert_eq!(number_text(482913.0), "482913");
        assert_eq!(number_text(-7.0), "-7");
        assert_eq!(number_text(0.5), "0.5");
        assert_eq!(number_text(1234.25), "1234.25");
        assert_eq!(number_text(f64::NAN), "NaN");
    }

    #[test]
    fn dates_read_as_iso_dates() {
        use calamine::{ExcelDateTime, ExcelDateTimeType};
        let day = ExcelDateTime::new(45352.0, ExcelDateTimeType::DateTime, false);
        assert_eq!(date_text(&day), "2024-03-01");
        let noon = ExcelDateTime::new(45352.5, ExcelDateTimeType::DateTime, false);
        assert_eq!(date_text(&noon), "2024-03-01 12:00:00");
    }

    #[test]
    fn rows_are_assembled_from_cells_with_gaps_and_limits() {
        let (tx, rx) = mpsc::sync_channel(16);
        let mut row = Row {
            tx: &tx,
            number: None,
            cells: Vec::new(),
        };
        for (r, c, text) in [
            (0, 0, "a"),
            (0, 2, "c"),
            (3, 1, "x"),
            (3, MAX_COLUMNS, "far"),
            (4, 0, ""),
        ] {
            assert!(row.push(r, c, text.to_string()).is_ok());
        }
        assert!(row.flush().is_ok());
        drop(tx);
        let rows: Vec<SheetRow> = rx.iter().map(|r| r.expect("row")).collect();
        assert_eq!(
            rows,
            [
                (1, vec!["a".to_string(), String::new(), "c".to_string()]),
                (4, vec![String::new(), "x".to_string()]),
            ],
            "an all-empty row is not sent; a cell past Excel's last column is dropped"
        );
    }

    #[test]
    fn extensions_name_the_kind() {
        assert_eq!(WorkbookKind::from_path("a.XLSX"), Some(WorkbookKind::Xlsx));
        assert_eq!(WorkbookKind::from_path("b.xlsm"), Some(WorkbookKind::Xlsx));
        assert_eq!(WorkbookKind::from_path("d/c.xls"), Some(WorkbookKind::Xls));
        assert_eq!(WorkbookKind::from_path("c.ods"), Some(WorkbookKind::Ods));
        assert_eq!(WorkbookKind::from_path("c.csv"), None);
        assert_eq!(WorkbookKind::from_path("xlsx"), None);
    }
}
