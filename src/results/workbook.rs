//! `report --xlsx`: a results file, or an export file (told apart by its header), as a workbook
//! for the people who live in Excel: one sheet of typed rows (numbers as numbers, dates as
//! dates), the header frozen, filters on, columns sized, outcome cells coloured; and a summary
//! sheet with the counts. The rows sheet is written in rust_xlsxwriter's constant-memory mode,
//! so a million-row file converts in bounded memory; the CSV formats stay the contract.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read as _};
use std::path::Path;

use rust_xlsxwriter::{Color, ExcelDateTime, Format, Workbook, Worksheet, XlsxError};

use crate::domain::model::ResultRow;
use crate::results::output::{CsvRow as _, ResultsReader};
use crate::results::schema::{self, EXPORT_COLUMNS};
use crate::results::ResultsError;

/// The fill of an outcome cell: green for done, amber for not sent, red for failed.
fn outcome_color(outcome: &str) -> Option<Color> {
    match outcome {
        "created" | "exists" => Some(Color::RGB(0xC6EFCE)),
        "duplicate" | "planned" => Some(Color::RGB(0xFFEB9C)),
        "failed" | "invalid" => Some(Color::RGB(0xFFC7CE)),
        _ => None,
    }
}

/// Writes `input` (a results or an export file) as the workbook `out`, replacing it whole.
pub fn write(input: &Path, out: &Path) -> Result<(), ResultsError> {
    let input_error = |source| ResultsError::ResultsInput {
        path: input.display().to_string(),
        source,
    };
    let mut workbook = Workbook::new();
    let mut sheet = RowsSheet::new(&mut workbook).map_err(xlsx_error(out))?;
    if is_export(input) {
        let mut reader = csv::Reader::from_path(input).map_err(input_io(input))?;
        sheet.header(&EXPORT_COLUMNS).map_err(xlsx_error(out))?;
        for record in reader.records() {
            let record = record.map_err(input_io(input))?;
            sheet.row(record.iter()).map_err(xlsx_error(out))?;
        }
    } else {
        let names: Vec<&str> = ResultRow::header().collect();
        sheet.header(&names).map_err(xlsx_error(out))?;
        let mut reader = ResultsReader::open(input).map_err(input_error)?;
        let mut record = csv::ByteRecord::new();
        while let Some(row) = reader.next_row() {
            record.clear();
            row.map_err(input_error)?.push_cells(&mut record);
            let cells: Vec<String> = record.iter().map(schema::undefuse).collect();
            sheet
                .row(cells.iter().map(String::as_str))
                .map_err(xlsx_error(out))?;
        }
        // The reader is closed before the workbook is renamed into place (Windows).
        drop(reader);
    }
    let (rows, counts) = sheet.finish().map_err(xlsx_error(out))?;
    summary(&mut workbook, input, rows, &counts).map_err(xlsx_error(out))?;
    crate::domain::atomic::replace(out, 0o644, |file| {
        workbook.save_to_writer(file).map_err(std::io::Error::other)
    })
    .map_err(|e| ResultsError::output_io(out.display().to_string(), e))
}

/// An export file starts with the export's header (a results file never does).
fn is_export(input: &Path) -> bool {
    let Ok(file) = std::fs::File::open(input) else {
        return false;
    };
    let mut line = Vec::new();
    // One header line at most: bounded like every read of an input.
    let read = BufReader::new(file)
        .take(64 * 1024)
        .read_until(b'\n', &mut line);
    read.is_ok() && line.trim_ascii() == EXPORT_COLUMNS.join(",").as_bytes()
}

fn input_io(input: &Path) -> impl Fn(csv::Error) -> ResultsError + '_ {
    move |e| {
        let (path, source) = (input.display().to_string(), crate::input::csv_to_io(e));
        crate::input::InputFileError::InputIo { path, source }.into()
    }
}

fn xlsx_error(out: &Path) -> impl Fn(XlsxError) -> ResultsError + '_ {
    move |e| ResultsError::OutputIo {
        path: out.display().to_string(),
        source: std::io::Error::other(e),
    }
}

/// The rows sheet, streamed, with what the summary needs counted on the way: the rows, and
/// each counted column's values where few.
struct RowsSheet<'a> {
    sheet: &'a mut Worksheet,
    names: Vec<String>,
    widths: Vec<usize>,
    rows: u32,
    counts: Counts,
    date: Format,
}

/// Per counted column, how many rows hold each value.
type Counts = BTreeMap<String, BTreeMap<String, u64>>;

/// The columns whose values the summary counts.
const COUNTED: [&str; 4] = ["outcome", "vetting_status", "http_status", "qualification"];

impl<'a> RowsSheet<'a> {
    fn new(workbook: &'a mut Workbook) -> Result<Self, XlsxError> {
        let sheet = workbook.add_worksheet_with_constant_memory()?;
        sheet.set_name("Rows")?;
        Ok(RowsSheet {
            sheet,
            names: Vec::new(),
            widths: Vec::new(),
            rows: 0,
            counts: Counts::default(),
            date: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
        })
    }

    fn header(&mut self, names: &[&str]) -> Result<(), XlsxError> {
        let bold = Format::new().set_bold();
        for (col, name) in (0u16..).zip(names) {
            self.sheet.write_string_with_format(0, col, *name, &bold)?;
        }
        self.names = names.iter().map(|n| n.to_string()).collect();
        self.widths = names.iter().map(|n| n.len()).collect();
        Ok(())
    }

    fn row<'c>(&mut self, cells: impl Iterator<Item = &'c str>) -> Result<(), XlsxError> {
        self.rows = self.rows.saturating_add(1);
        for ((col, cell), at) in (0u16..).zip(cells).zip(0usize..) {
            let Some(name) = self.names.get(at) else {
                break;
            };
            if cell.is_empty() {
                continue;
            }
            self.widths[at] = self.widths[at].max(cell.chars().count().min(60));
            if COUNTED.contains(&name.as_str()) {
                // Looked up by `&str` first: a name or value is copied once, not once per cell.
                if !self.counts.contains_key(name) {
                    self.counts.insert(name.clone(), BTreeMap::new());
                }
                let values = self.counts.get_mut(name).expect("inserted above");
                if let Some(n) = values.get_mut(cell) {
                    *n += 1;
                } else if values.len() < 50 {
                    // A column of many distinct values (not a status) is not worth a count.
                    values.insert(cell.to_string(), 1);
                }
            }
            // Numbers as numbers, dates as dates, outcomes coloured; anything that does not
            // parse, and every other column, as text.
            match name.as_str() {
                "row" | "http_status" | "attempts" | "elapsed_ms" => match cell.parse::<f64>() {
                    Ok(n) => self.sheet.write_number(self.rows, col, n)?,
                    Err(_) => self.sheet.write_string(self.rows, col, cell)?,
                },
                "vetting_create_date" => match ExcelDateTime::parse_from_str(cell) {
                    Ok(date) => self
                        .sheet
                        .write_datetime_with_format(self.rows, col, &date, &self.date)?,
                    Err(_) => self.sheet.write_string(self.rows, col, cell)?,
                },
                "outcome" => match outcome_color(cell) {
                    Some(color) => self.sheet.write_string_with_format(
                        self.rows,
                        col,
                        cell,
                        &Format::new().set_background_color(color),
                    )?,
                    None => self.sheet.write_string(self.rows, col, cell)?,
                },
                _ => self.sheet.write_string(self.rows, col, cell)?,
            };
        }
        Ok(())
    }

    /// Freezes the header, turns the filters on over every row, sizes the columns.
    fn finish(self) -> Result<(u32, Counts), XlsxError> {
        self.sheet.set_freeze_panes(1, 0)?;
        let last_col = u16::try_from(self.names.len().saturating_sub(1)).unwrap_or(u16::MAX);
        self.sheet.autofilter(0, 0, self.rows, last_col)?;
        for (col, width) in (0u16..).zip(&self.widths) {
            self.sheet
                .set_column_width(col, u32::try_from(*width + 2).unwrap_or(62))?;
        }
        Ok((self.rows, self.counts))
    }
}

/// The summary sheet: the file, its rows, and the counts per status; opened first.
fn summary(book: &mut Workbook, input: &Path, rows: u32, counts: &Counts) -> Result<(), XlsxError> {
    let sheet = book.add_worksheet();
    sheet.set_name("Summary")?;
    let bold = Format::new().set_bold();
    sheet.write_string_with_format(0, 0, "file", &bold)?;
    sheet.write_string(0, 1, input.display().to_string())?;
    sheet.write_string_with_format(1, 0, "rows", &bold)?;
    sheet.write_number(1, 1, rows)?;
    let mut at = 3u32;
    for (column, values) in counts {
        sheet.write_string_with_format(at, 0, column, &bold)?;
        at += 1;
        for (value, n) in values {
            sheet.write_string(at, 0, value)?;
            sheet.write_number(at, 1, *n as f64)?;
            at += 1;
        }
        at += 1;
    }
    sheet.set_column_width(0, 24)?;
    sheet.set_active(true);
    Ok(())
}
