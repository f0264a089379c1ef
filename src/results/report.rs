//! `pc-qualify report RESULTS.csv --html report.html`: one self-contained HTML page summarising a
//! results file for the people who asked for the run: outcome and vetting counts, the spread of
//! attempts and time per row, the throughput over time, the HTTP statuses, and a sortable table of the rows that failed or
//! were invalid.
//!
//! The page fetches nothing: charts are inline SVG, the sorting is a few lines of inline script,
//! and a Content-Security-Policy of `default-src 'none'` keeps it that way even if a value slipped
//! through; the one style sheet and the one script are admitted by their SHA-256, so no other
//! inline script or style (no `'unsafe-inline'`) runs. Every value from the results file is
//! HTML-escaped (error messages come from the service and from the input, so they may hold
//! anything). It reads the results file, and the run's timeline beside it for the throughput.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::domain::model::{Outcome, ResultRow};
use crate::results::output::ResultsReader;
use crate::results::timeline::{throughput, Throughput};
use crate::results::ResultsError;

/// Rows the table lists at most; the page says how many more the results file holds.
const MAX_TABLE_ROWS: usize = 5000;

/// `elapsed_ms` buckets: upper bounds (exclusive) and labels; the last is open-ended.
const ELAPSED_BUCKETS: [(u64, &str); 6] = [
    (10, "< 10 ms"),
    (100, "10–100 ms"),
    (1_000, "0.1–1 s"),
    (10_000, "1–10 s"),
    (60_000, "10–60 s"),
    (u64::MAX, "≥ 60 s"),
];

/// The throughput chart's bars at most.
const THROUGHPUT_BARS: u32 = 20;

/// Attempts at or above this are shown together.
const ATTEMPTS_CAP: u32 = 10;

/// What the page shows, gathered in one pass over the results.
#[derive(Default)]
struct Summary {
    rows: u64,
    outcomes: BTreeMap<Outcome, u64>,
    vetting: BTreeMap<String, u64>,
    statuses: BTreeMap<String, u64>,
    attempts: BTreeMap<u32, u64>,
    elapsed: [u64; ELAPSED_BUCKETS.len()],
    elapsed_ms: Vec<u64>,
    problems: Vec<ResultRow>,
    problems_total: u64,
    /// Rows finished per span of running time, from the run's timeline.
    throughput: Option<Result<Throughput, &'static str>>,
}

impl Summary {
    fn add(&mut self, row: ResultRow) {
        self.rows += 1;
        if let Some(outcome) = row.outcome {
            *self.outcomes.entry(outcome).or_default() += 1;
        }
        let vetting = row.vetting_status.as_deref().unwrap_or("none");
        *self.vetting.entry(vetting.to_string()).or_default() += 1;
        let status = row.http_status.map_or("none".into(), |s| s.to_string());
        *self.statuses.entry(status).or_default() += 1;
        let attempts = row.attempts.min(ATTEMPTS_CAP);
        *self.attempts.entry(attempts).or_default() += 1;
        let bucket = ELAPSED_BUCKETS
            .iter()
            .position(|(limit, _)| row.elapsed_ms < *limit)
            .unwrap_or(ELAPSED_BUCKETS.len() - 1);
        self.elapsed[bucket] += 1;
        self.elapsed_ms.push(row.elapsed_ms);
        if matches!(row.outcome, Some(Outcome::Failed | Outcome::Invalid)) {
            self.problems_total += 1;
            if self.problems.len() < MAX_TABLE_ROWS {
                self.problems.push(row);
            }
        }
    }
}

/// Reads `results` and writes the page to `html` (`-` for standard output).
pub fn execute(results: &Path, html: &str) -> Result<(), ResultsError> {
    let input_error = |source| ResultsError::ResultsInput {
        path: results.display().to_string(),
        source,
    };
    let mut summary = Summary::default();
    let mut reader = ResultsReader::open(results).map_err(input_error)?;
    while let Some(row) = reader.next_row() {
        summary.add(row.map_err(input_error)?);
    }
    // Closed before the page is written: Windows refuses to replace a file that is still open,
    // should `--html` name it.
    drop(reader);
    summary.throughput = Some(throughput(results, THROUGHPUT_BARS));
    let name = results.file_name().map_or_else(
        || results.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    let page = render(&summary, &name, &now);
    let written = if html == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(page.as_bytes()).and_then(|()| out.flush())
    } else {
        // Beside the target and renamed over it, so a page being served is never half written.
        crate::domain::atomic::replace(Path::new(html), 0o644, |file| {
            file.write_all(page.as_bytes())
        })
    };
    written.map_err(|e| ResultsError::piped_io(html, e))
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and line breaks have no business in a page.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn outcome_color(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Created => "#2e7d32",
        Outcome::Exists => "#1565c0",
        Outcome::Failed => "#c62828",
        Outcome::Invalid => "#ef6c00",
        Outcome::Duplicate => "#757575",
        Outcome::Planned => "#6a1b9a",
    }
}

fn vetting_color(status: &str) -> &'static str {
    match status.to_ascii_lowercase().as_str() {
        "approved" => "#2e7d32",
        "denied" => "#c62828",
        "inreview" | "in review" => "#f9a825",
        "none" => "#9e9e9e",
        _ => "#5c6bc0",
    }
}

fn status_color(status: &str) -> &'static str {
    match status.as_bytes().first() {
        Some(b'2') => "#2e7d32",
        Some(b'4') => "#ef6c00",
        Some(b'5') => "#c62828",
        _ => "#9e9e9e",
    }
}

/// One bar of a chart: label, count, colour.
type Bar = (String, u64, &'static str);

/// A bar per entry of `counts`, made by `bar` from its key and count.
fn bars<K>(counts: &BTreeMap<K, u64>, bar: impl Fn(&K, u64) -> Bar) -> Vec<Bar> {
    counts.iter().map(|(key, n)| bar(key, *n)).collect()
}

/// A horizontal bar chart as inline SVG: one bar per `(label, count, colour)`.
fn bar_chart(title: &str, bars: &[Bar]) -> String {
    const LABEL_W: u64 = 130;
    const BAR_W: u64 = 300;
    const ROW_H: u64 = 26;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    // Saturating: the throughput bars come from a timeline file, which may hold any figure.
    let total = bars.iter().fold(0u64, |sum, b| sum.saturating_add(b.1));
    let height = ROW_H * u64::try_from(bars.len()).unwrap_or(0) + 8;
    if bars.is_empty() {
        return "<p class=\"empty\">No rows.</p>".to_string();
    }
    let mut svg = format!(
        r#"<svg class="chart" role="img" aria-label="{}" width="100%" viewBox="0 0 {} {height}" preserveAspectRatio="xMinYMin meet">"#,
        escape(title),
        LABEL_W + BAR_W + 100,
    );
    for (i, (label, count, color)) in bars.iter().enumerate() {
        let y = ROW_H * u64::try_from(i).unwrap_or(0) + 4;
        // Integer arithmetic: the width in pixels, at least 2 for a non-zero count.
        let width = (count.saturating_mul(BAR_W) / max).max(u64::from(*count > 0) * 2);
        let share = if total > 0 {
            format!("{:.1}%", ratio(*count, total, 100.0))
        } else {
            String::new()
        };
        let _ = write!(
            svg,
            r#"<g><title>{label}: {count}</title><text x="{}" y="{}" text-anchor="end" class="label">{label}</text><rect x="{LABEL_W}" y="{y}" width="{width}" height="{}" rx="3" fill="{color}"/><text x="{}" y="{}" class="count">{count} <tspan class="share">{share}</tspan></text></g>"#,
            LABEL_W - 8,
            y + 15,
            ROW_H - 8,
            LABEL_W + width + 6,
            y + 15,
            label = escape(label),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Rows finished per span of running time, labelled by the span's start (`h:mm:ss`).
fn throughput_chart(drawn: &Result<Throughput, &str>, name: &str) -> (String, String) {
    let drawn = match drawn {
        Ok(drawn) => drawn,
        Err(why) => {
            let why = format!("Nothing to draw: {why} ({name}.timeline, written by run and reconcile), so the throughput over time cannot be shown.");
            return (
                format!("<p class=\"empty\">{}</p>", escape(&why)),
                String::new(),
            );
        }
    };
    let secs = drawn.span.as_secs().max(1);
    let bars: Vec<Bar> = (0u64..)
        .zip(&drawn.counts)
        .map(|(i, n)| {
            let at = i.saturating_mul(secs);
            let label = format!("{}:{:02}:{:02}", at / 3600, at / 60 % 60, at % 60);
            (label, *n, "#5e35b1")
        })
        .collect();
    let per_second = |rows, ms| ratio(rows, u64::try_from(ms).unwrap_or(u64::MAX), 1000.0);
    let total = drawn
        .counts
        .iter()
        .fold(0u64, |sum, n| sum.saturating_add(*n));
    let peak = drawn.counts.iter().max().copied().unwrap_or(0);
    let note = format!(
        "rows finished in each {secs} s of running time (a run and its --resume laid end to end; from {name}.timeline); average {:.1} rows/s, best span {:.1} rows/s. Dips are pauses after 429s, retries or a slow service",
        per_second(total, drawn.running.as_millis()),
        per_second(peak, drawn.span.as_millis()),
    );
    (bar_chart("Throughput over time", &bars), note)
}

/// `part` per `whole` (at least 1), times `scale`. Counts and times stay far below 2^32, where
/// the conversion to f64 is exact; `as` is not needed.
fn ratio(part: u64, whole: u64, scale: f64) -> f64 {
    let exact = |n: u64| f64::from(u32::try_from(n).unwrap_or(u32::MAX));
    exact(part) * scale / exact(whole).max(1.0)
}

/// The `q`th percentile (nearest rank below) of `sorted`; `None` when it is empty.
fn quantile(sorted: &[u64], q: usize) -> Option<u64> {
    let i = sorted.len().saturating_sub(1) * q / 100;
    sorted.get(i).copied()
}

/// The whole page.
fn render(summary: &Summary, name: &str, generated: &str) -> String {
    let mut page = String::with_capacity(16 * 1024 + summary.problems.len() * 300);
    // The cards' colours are rules here: a `style` attribute would need 'unsafe-inline'.
    let mut style = STYLE.to_string();
    for outcome in Outcome::ALL {
        let color = outcome_color(outcome);
        let _ = writeln!(
            style,
            ".card[data-outcome={outcome}] {{ border-top-color: {color}; }}"
        );
    }
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src {style_hash}; script-src {script_hash}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pc-qualify report: {title}</title>
<style>{style}</style>
</head>
<body>
<main>
<h1>Qualification run report</h1>
<p class="meta">Results file <b>{title}</b> · {rows} row(s) · generated {generated}</p>
<div class="cards">"#,
        title = escape(name),
        rows = summary.rows,
        generated = escape(generated),
        style_hash = csp_hash(&style),
        script_hash = csp_hash(SCRIPT),
    );
    let count = |outcome| summary.outcomes.get(&outcome).copied().unwrap_or(0);
    for outcome in Outcome::ALL {
        let n = count(outcome);
        let _ = write!(
            page,
            r#"<div class="card" data-outcome="{outcome}"><b>{n}</b>{outcome}</div>"#
        );
    }
    page.push_str("</div>\n<div class=\"grid\">\n");

    let outcomes = Outcome::ALL.map(|o| (o.as_str().to_string(), count(o), outcome_color(o)));
    let svg = bar_chart("Outcomes", &outcomes);
    section(&mut page, "outcomes", "Outcomes", &svg, "");

    let vetting = bars(&summary.vetting, |s, n| (s.clone(), n, vetting_color(s)));
    let svg = bar_chart("Vetting status", &vetting);
    let note = "none: no vetting status (not created, or not read)";
    section(&mut page, "vetting", "Vetting status", &svg, note);

    let statuses = bars(&summary.statuses, |s, n| (s.clone(), n, status_color(s)));
    section(
        &mut page,
        "statuses",
        "HTTP status of the deciding call",
        &bar_chart("HTTP status", &statuses),
        "none: nothing was sent (invalid, duplicate, planned) or no answer came",
    );

    let attempts = bars(&summary.attempts, |&a, n| {
        let label = match a {
            0 => "0 (not sent)".to_string(),
            a if a >= ATTEMPTS_CAP => format!("{ATTEMPTS_CAP}+"),
            a => a.to_string(),
        };
        (label, n, if a > 1 { "#f9a825" } else { "#546e7a" })
    });
    let svg = bar_chart("Attempts", &attempts);
    let note = "more than 1: the call was retried (throttling, transient errors)";
    section(&mut page, "attempts", "Attempts per row", &svg, note);

    let mut sorted = summary.elapsed_ms.clone();
    sorted.sort_unstable();
    let elapsed: Vec<Bar> = ELAPSED_BUCKETS
        .iter()
        .zip(summary.elapsed)
        .map(|((_, label), n)| (label.to_string(), n, "#00838f"))
        .collect();
    // elapsed_ms runs from when a worker took the row to its last answer: most of it is the
    // wait for the rate limit's turn, which a reader would otherwise take for a slow service.
    let waiting = "includes waiting for the request rate's turn (--rate) and 429 pauses; the service's own answer time is the run summary's latency line";
    let note = match (quantile(&sorted, 50), quantile(&sorted, 95), sorted.last()) {
        (Some(p50), Some(p95), Some(max)) => {
            format!("median {p50} ms · 95th percentile {p95} ms · slowest {max} ms; each {waiting}")
        }
        _ => String::new(),
    };
    section(
        &mut page,
        "elapsed",
        "Time per row, waiting for the rate limit included (elapsed_ms)",
        &bar_chart("Time per row", &elapsed),
        &note,
    );
    let none = Err("no timeline read");
    let (svg, note) = throughput_chart(summary.throughput.as_ref().unwrap_or(&none), name);
    section(&mut page, "throughput", "Throughput over time", &svg, &note);
    page.push_str("</div>\n");

    let _ = write!(
        page,
        r#"<section id="problems-section"><h2>Failed and invalid rows ({})</h2>"#,
        summary.problems_total
    );
    if summary.problems.is_empty() {
        page.push_str(
            "<p class=\"empty\">None: every row was created, exists, duplicate or planned.</p>",
        );
    } else {
        page.push_str(
            "<p class=\"note\">Click a column to sort; click again to reverse.</p>\n<table id=\"problems\"><thead><tr>",
        );
        for (key, class, _) in TABLE_COLUMNS {
            let num = if class == "num" {
                r#" data-type="num""#
            } else {
                ""
            };
            let _ = write!(page, r#"<th data-key="{key}"{num}>{key}</th>"#);
        }
        page.push_str("</tr></thead>\n<tbody>\n");
        for row in &summary.problems {
            page.push_str("<tr>");
            for (_, class, cell) in TABLE_COLUMNS {
                let _ = write!(page, r#"<td class="{class}">{}</td>"#, escape(&cell(row)));
            }
            page.push_str("</tr>\n");
        }
        page.push_str("</tbody></table>");
        if summary.problems_total > u64::try_from(summary.problems.len()).unwrap_or(u64::MAX) {
            let _ = write!(
                page,
                "<p class=\"note\">The first {} of {} are listed; the results file has them all.</p>",
                summary.problems.len(),
                summary.problems_total
            );
        }
    }
    // Exactly SCRIPT between the tags: the CSP admits the script by the hash of that text.
    page.push_str("</section>\n</main>\n<script>");
    page.push_str(SCRIPT);
    page.push_str("</script>\n</body>\n</html>\n");
    page
}

/// A Content-Security-Policy source that admits the one inline `<style>` or `<script>` whose
/// text is exactly `text` (and no other, injected or changed).
fn csp_hash(text: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The page's style sheet (the cards' colours are added per outcome).
const STYLE: &str = r#"
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121; margin: 0; background: #f5f6f8; }
main { max-width: 1240px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 10px; }
.meta { color: #616161; margin: 0 0 18px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 18px; }
.card { background: #fff; border-radius: 8px; padding: 10px 16px; min-width: 110px; box-shadow: 0 1px 2px rgba(0,0,0,.08); border-top: 4px solid #9e9e9e; }
.card b { display: block; font-size: 24px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; margin-bottom: 16px; }
.grid section { margin: 0; }
section { background: #fff; border-radius: 8px; padding: 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); margin-bottom: 16px; overflow-x: auto; }
.chart { max-width: 560px; display: block; }
.chart text { font-size: 13px; fill: #212121; }
.chart .share { fill: #757575; }
.note { color: #616161; font-size: 13px; margin: 6px 0 0; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { text-align: left; padding: 5px 6px; border-bottom: 1px solid #e0e0e0; vertical-align: top; }
th { background: #eceff1; cursor: pointer; user-select: none; white-space: nowrap; position: sticky; top: 0; }
th[aria-sort=ascending]::after { content: " ▲"; }
th[aria-sort=descending]::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.msg { min-width: 200px; overflow-wrap: anywhere; }
td.id { font-family: ui-monospace, monospace; font-size: 12px; min-width: 150px; overflow-wrap: anywhere; }
.empty { color: #616161; }
"#;

/// The table's columns: results column (also the heading), the cells' class (`num` sorts as
/// numbers), and the cell.
type TableColumn = (&'static str, &'static str, fn(&ResultRow) -> String);
const TABLE_COLUMNS: [TableColumn; 9] = [
    ("row", "num", |r| r.row.to_string()),
    ("customer_id", "id", |r| r.customer_id.clone()),
    ("qualification", "", |r| r.qualification.clone()),
    ("outcome", "", |r| or_empty(&r.outcome)),
    ("http_status", "num", |r| or_empty(&r.http_status)),
    ("error_code", "", |r| or_empty(&r.error_code)),
    ("error_message", "msg", |r| or_empty(&r.error_message)),
    ("attempts", "num", |r| r.attempts.to_string()),
    ("elapsed_ms", "num", |r| r.elapsed_ms.to_string()),
];

/// A cell that is empty for `None`.
fn or_empty(value: &Option<impl ToString>) -> String {
    value.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

fn section(page: &mut String, id: &str, title: &str, body: &str, note: &str) {
    let _ = write!(
        page,
        r#"<section id="{id}"><h2>{}</h2>{body}"#,
        escape(title)
    );
    if !note.is_empty() {
        let _ = write!(page, r#"<p class="note">{}</p>"#, escape(note));
    }
    page.push_str("</section>\n");
}

/// Sorting by a click on a heading, or on load from `#sort=COLUMN[:desc]` (a link can carry the
/// order). The body gets `data-ready="1"` once the script has run, and `data-error` if any
/// script error happens, so a headless browser can check the page.
const SCRIPT: &str = r#"window.addEventListener('error', function (e) {
  document.documentElement.setAttribute('data-error', String(e.message));
});
(function () {
  var table = document.getElementById('problems');
  if (table) {
    var heads = table.tHead.rows[0].cells;
    var sort = function (col, dir) {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var numeric = heads[col].getAttribute('data-type') === 'num';
      var value = function (row) { return row.cells[col].textContent; };
      rows.sort(function (a, b) {
        var x = value(a), y = value(b), c;
        if (numeric) {
          var nx = x === '' ? -Infinity : Number(x), ny = y === '' ? -Infinity : Number(y);
          c = nx < ny ? -1 : (nx > ny ? 1 : 0);
        } else {
          c = x.localeCompare(y);
        }
        return dir * c || Number(a.cells[0].textContent) - Number(b.cells[0].textContent);
      });
      rows.forEach(function (row) { body.appendChild(row); });
      for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute('aria-sort'); }
      heads[col].setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
      table.setAttribute('data-sorted', heads[col].getAttribute('data-key') + ':' + (dir > 0 ? 'asc' : 'desc'));
    };
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener('click', function () {
        sort(col, th.getAttribute('aria-sort') === 'ascending' ? -1 : 1);
      });
    });
    var m = /^#sort=([a-z_]+)(?::(asc|desc))?$/.exec(window.location.hash);
    if (m) {
      for (var i = 0; i < heads.length; i++) {
        if (heads[i].getAttribute('data-key') === m[1]) { sort(i, m[2] === 'desc' ? -1 : 1); }
      }
    }
  }
  document.body.setAttribute('data-ready', '1');
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u64, outcome: Outcome, message: &str, elapsed_ms: u64) -> ResultRow {
        ResultRow {
            row: n,
            customer_id: format!("id-{n}"),
            qualification: "Education".into(),
            outcome: Some(outcome),
            http_status: (outcome == Outcome::Failed).then_some(400),
            attempts: 1,
            error_message: Some(message.into()).filter(|m: &String| !m.is_empty()),
            elapsed_ms,
            ..ResultRow::default()
        }
    }

    /// Regression: the chart's total of a timeline's huge counts overflowed (a panic in debug).
    #[test]
    fn a_timeline_with_huge_counts_is_drawn_without_overflow() {
        let huge = |label: &str| (label.to_string(), u64::MAX, "#000");
        let svg = bar_chart("rows", &[huge("0:00:00"), huge("0:00:10")]);
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
    }

    #[test]
    fn every_value_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let mut summary = Summary::default();
        summary.add(row(1, Outcome::Failed, "<img src=x onerror=alert(1)>", 5));
        let mut hostile = row(2, Outcome::Created, "", 5);
        hostile.vetting_status = Some("<b>Approved</b>".into());
        summary.add(hostile);
        let page = render(&summary, "<r>.csv", "now");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<b>Approved"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("&lt;r&gt;.csv"));
    }

    #[test]
    fn counts_buckets_and_the_table_follow_the_rows() {
        let mut summary = Summary::default();
        summary.add(row(1, Outcome::Created, "", 5));
        summary.add(row(2, Outcome::Failed, "boom", 150));
        summary.add(row(3, Outcome::Invalid, "bad id", 0));
        summary.add(row(4, Outcome::Exists, "", 70_000));
        assert_eq!(summary.rows, 4);
        assert_eq!(summary.elapsed, [2, 0, 1, 0, 0, 1]);
        assert_eq!(summary.problems_total, 2);
        assert_eq!(summary.statuses.get("400"), Some(&1));
        assert_eq!(summary.statuses.get("none"), Some(&3));
        let page = render(&summary, "r.csv", "now");
        assert_eq!(page.matches("<tr><td").count(), 2);
        assert!(page.contains(r#"data-outcome="failed"><b>1</b>"#));
        assert!(!page.contains("http:") && !page.contains("https:") && !page.contains("src="));
    }
}
