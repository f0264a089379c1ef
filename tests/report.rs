//! `pc-qualify report`: the page's structure, that it fetches nothing, escapes what it shows, and
//! renders in a real headless browser (Chromium) with a working sortable table.

use crate::common::*;
use std::path::{Path, PathBuf};

/// A results file with every outcome, retries, slow rows, a Denied vetting, and hostile text.
fn results_file(dir: &TempDir) -> PathBuf {
    let mut text = String::from(RESULTS_HEADER);
    text.push('\n');
    let rows = [
        format!("1,{},Education,created,201,InReview,,2026-01-05T10:00:00Z,1,,,,,412", cid(1)),
        format!("2,{},Education,created,201,Approved,,,3,,,,,2300", cid(2)),
        format!("3,{},StateOwnedEntity,exists,409,Denied,Not a government entity,,1,,,,,95", cid(3)),
        format!("4,{},GovernmentCommunityCloud,failed,400,,,,1,,,600024,\"<script>alert('x')</script> & <img src=x onerror=alert(1)>\",150", cid(4)),
        format!("5,{},Education,failed,503,,,,6,,,ServiceUnavailable,retries exhausted,61000", cid(5)),
        "6,not-a-guid,Education,invalid,,,,,0,,,invalid_customer_id,customer_id: not a GUID: not-a-guid,0".to_string(),
        format!("7,{},Education,duplicate,,,,,0,,,duplicate,same customer and qualification as row 1,0", cid(1)),
        format!("8,{},Nonprofit,invalid,,,,,0,,,invalid_qualification,\"qualification: \"\"Nonprofit\"\" cannot be set\",0", cid(8)),
    ];
    for row in rows {
        text.push_str(&row);
        text.push('\n');
    }
    dir.write("results.csv", text)
}

fn report(results: &Path, html: &Path) -> Finished {
    pcq(&[
        "report",
        &results.display().to_string(),
        "--html",
        &html.display().to_string(),
    ])
    .output()
}

#[test]
fn the_page_is_self_contained_and_escapes_every_value() {
    let dir = work_dir("report");
    let results = results_file(&dir);
    let html = dir.join("report.html");
    let output = report(&results, &html);
    output.assert_code(0);
    let page = std::fs::read_to_string(&html).expect("page");
    // The time per row is labelled with what it includes (issue 24): the wait for the rate limit.
    assert!(
        page.contains("waiting for the rate limit included"),
        "the time label"
    );

    // Nothing to fetch: no external address, no element that loads anything.
    let lower = page.to_ascii_lowercase();
    for needle in [
        "http://", "https://", "//cdn", "href=", "url(", "@import", "<link", "<img", "<iframe",
        "<object", "<embed",
    ] {
        assert!(!lower.contains(needle), "found {needle:?} in the page");
    }
    // `src=` appears only inside the escaped hostile message, never in a tag.
    assert_eq!(
        lower.matches("src=").count(),
        lower.matches("&lt;img src=").count()
    );
    assert!(page.contains("default-src 'none'"), "a CSP forbids fetches");
    // Issue 22: no 'unsafe-inline'; the page's one script and one style sheet are admitted by
    // the hashes of the very text in the page, and nothing is styled by attribute.
    let csp = between(
        &page,
        r#"http-equiv="Content-Security-Policy" content=""#,
        "\"",
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    for (open, close, directive) in [
        ("<script>", "</script>", "script-src"),
        ("<style>", "</style>", "style-src"),
    ] {
        let hash = csp_hash(between(&page, open, close));
        assert!(
            csp.contains(&format!("{directive} {hash}")),
            "{hash} in {csp}"
        );
    }
    assert!(
        !lower.contains(" style="),
        "a style attribute needs 'unsafe-inline'"
    );
    // Hostile text is shown, escaped.
    assert!(
        !page.contains("<script>alert"),
        "raw script from the results"
    );
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;img src=x"));
    assert_eq!(
        page.matches("<script>").count(),
        1,
        "only the page's own script"
    );

    // Structure: outcome cards, charts as inline SVG, the table of failed and invalid rows.
    for (outcome, n) in [
        ("created", 2),
        ("exists", 1),
        ("failed", 2),
        ("invalid", 2),
        ("duplicate", 1),
        ("planned", 0),
    ] {
        assert!(
            page.contains(&format!(r#"data-outcome="{outcome}"><b>{n}</b>"#)),
            "{outcome} {n}"
        );
    }
    for id in ["outcomes", "vetting", "statuses", "attempts", "elapsed"] {
        let at = page
            .find(&format!(r#"<section id="{id}">"#))
            .unwrap_or_else(|| panic!("section {id}"));
        assert!(page[at..].contains("<svg"), "{id} has a chart");
    }
    assert!(page.contains("<title>Denied: 1</title>"));
    // Without a run's timeline the page says why it shows no throughput over time.
    assert!(page.contains("no timeline beside the results file (results.csv.timeline"));
    assert!(page.contains("<title>503: 1</title>"));
    assert!(page.contains("<title>≥ 60 s: 1</title>"));
    assert!(page.contains("<title>6: 1</title>"), "six attempts");
    assert!(page.contains("Failed and invalid rows (4)"));
    assert_eq!(page.matches("<tr><td").count(), 4);

    // Not a results file: exit 2, no page.
    let other = dir.write("input.csv", "customer_id,qualification\n");
    let output = report(&other, &dir.join("x.html"));
    output.assert_code(2);
    assert!(text(&output.stderr).contains("not a pc-qualify results file"));
    assert!(!dir.join("x.html").exists());
}

/// The text between the first `open` and the `close` after it.
fn between<'a>(page: &'a str, open: &str, close: &str) -> &'a str {
    let start = page.find(open).unwrap_or_else(|| panic!("{open}")) + open.len();
    let len = page[start..]
        .find(close)
        .unwrap_or_else(|| panic!("{close}"));
    &page[start..start + len]
}

/// The CSP source for an inline element holding exactly `text`, as a browser computes it.
fn csp_hash(text: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(digest);
    format!("'sha256-{encoded}'")
}

/// Chromium in headless mode with a throwaway profile.
fn headless(browser: &str, args: &[&str]) -> Finished {
    let profile = work_dir("chromium-profile");
    let profile = format!("--user-data-dir={}", profile.path().display());
    Cmd::new(browser)
        .args(&[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            &profile,
        ])
        .args(args)
        .output()
}

/// The text of column `col` in each row of the dumped table, in document order.
fn column(dom: &str, col: usize) -> Vec<String> {
    let body = dom.split("<tbody>").nth(1).expect("table body");
    let body = body.split("</tbody>").next().expect("table end");
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            let cell = row.split("<td").nth(col + 1).expect("cell");
            let start = cell.find('>').expect("cell start") + 1;
            let end = cell.find("</td>").expect("cell end");
            cell[start..end].to_string()
        })
        .collect()
}

#[test]
fn the_page_renders_in_a_headless_browser_and_the_table_sorts() {
    let Some(browser) = outside_program(
        &[
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ],
        &["--version"],
        "Chromium: apt-get install -y chromium; the report was not checked in a browser",
    ) else {
        return;
    };
    let dir = work_dir("report-browser");
    let results = results_file(&dir);
    let html = dir.join("report.html");
    assert_eq!(report(&results, &html).status.code(), Some(0));
    let url = format!("file://{}", html.display());

    // As written: by row, ascending, and the script ran without error.
    let output = headless(&browser, &["--dump-dom", &url]);
    let dom = text(&output.stdout);
    assert!(
        dom.contains(r#"<body data-ready="1">"#),
        "the script ran to its end: {}",
        text(&output.stderr)
    );
    assert!(!dom.contains("data-error=\""), "a script error: {dom}");
    assert_eq!(column(&dom, 0), ["4", "5", "6", "8"]);

    // Sorted by elapsed_ms, descending, through the page's own sorting code.
    let output = headless(
        &browser,
        &["--dump-dom", &format!("{url}#sort=elapsed_ms:desc")],
    );
    let dom = text(&output.stdout);
    assert!(!dom.contains("data-error=\""), "a script error: {dom}");
    assert!(dom.contains(r#"data-sorted="elapsed_ms:desc""#), "{dom}");
    assert!(
        dom.contains(r#"data-key="elapsed_ms" data-type="num" aria-sort="descending""#),
        "{dom}"
    );
    assert_eq!(
        column(&dom, 8),
        ["61000", "150", "0", "0"],
        "numeric, not text, order"
    );
    assert_eq!(column(&dom, 0), ["5", "4", "6", "8"], "ties keep row order");
    // Text columns sort as text.
    let output = headless(&browser, &["--dump-dom", &format!("{url}#sort=error_code")]);
    let codes = column(&text(&output.stdout), 5);
    assert_eq!(codes.len(), 4, "the four rows are in the table");
    let mut sorted = codes.clone();
    sorted.sort_by_key(|c| c.to_lowercase());
    assert_eq!(codes, sorted);
    // The hostile message is text in the DOM, not an element.
    assert!(!dom.contains("<img src=\"x\""), "{dom}");

    // A screenshot next to the test output, for a person to look at.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let output = headless(
        &browser,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1500",
            &format!("{url}#sort=elapsed_ms:desc"),
        ],
    );
    let png = std::fs::read(&shot)
        .unwrap_or_else(|e| panic!("no screenshot ({e}): {}", text(&output.stderr)));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        png.len() > 20_000,
        "a page with content, not a blank image ({} bytes)",
        png.len()
    );
    eprintln!("report screenshot: {}", shot.display());
}

/// Issue 24: the page shows the run's throughput over time, from the timeline a run writes
/// beside its results (the results rows carry no time); a `--resume` appends its own run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_runs_throughput_from_its_timeline() {
    let dir = work_dir("timeline");
    let run = |resume: bool| {
        let extra = if resume { "--resume" } else { "--rate=20" };
        let (output, sample) = (dir.s("results.csv"), "samples/customers.csv");
        pcq(&["run", "--sandbox", "-i", sample, "-o", &output, extra])
    };
    run(false).run().await.assert_code(1);
    let lines = |text: String| -> Vec<(u64, u64)> {
        let number = |n: &str| n.parse::<u64>().expect("a number");
        let pair = |l: &str| l.split_once(',').map(|(a, b)| (number(a), number(b)));
        text.lines().map(|l| pair(l).expect("ms,rows")).collect()
    };
    let timeline = lines(std::fs::read_to_string(dir.join("results.csv.timeline")).expect("kept"));
    let rows = results(&dir.join("results.csv")).len() as u64;
    assert_eq!(
        (timeline[0].1, timeline.last().map(|l| l.1)),
        (0, Some(rows))
    );
    assert!(timeline
        .windows(2)
        .all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));

    let html = dir.join("report.html");
    report(&dir.join("results.csv"), &html).assert_code(0);
    let page = std::fs::read_to_string(&html).expect("page");
    let section = between(&page, r#"<section id="throughput">"#, "</section>");
    let bar = |title: &str| {
        title
            .rsplit_once(": ")
            .map(|(_, n)| n.parse::<u64>().expect("n"))
    };
    let titles = section
        .split("<title>")
        .skip(1)
        .map(|t| t.split("</title>").next());
    let drawn: u64 = titles.map(|t| bar(t.expect("title")).expect("count")).sum();
    assert_eq!(drawn, rows, "{section}");
    assert!(section.contains("rows/s"), "{section}");

    // The resume's rows are its own run, laid after the first.
    run(true).run().await.assert_code(1);
    let both = lines(std::fs::read_to_string(dir.join("results.csv.timeline")).expect("kept"));
    assert_eq!(both[..timeline.len()], timeline[..]);
    assert_eq!(both[timeline.len()].1, 0, "the resumed run starts at 0");
}

/// `report --xlsx` (issue 24): the rows as typed cells (numbers as numbers, dates as dates),
/// the header frozen and filters on, and a summary sheet whose counts are the file's; the same
/// for an export file, told apart by its header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbook_has_typed_rows_a_frozen_filtered_header_and_the_counts() {
    use calamine::{open_workbook_auto, Data, Reader};
    let dir = work_dir("xlsx");
    let (results_csv, workbook) = (dir.join("r.csv"), dir.join("r.xlsx"));
    pcq(&[
        "run",
        "--sandbox",
        "--input",
        "samples/customers.csv",
        "--output",
        &results_csv.display().to_string(),
    ])
    .run()
    .await
    .assert_code(1);
    pcq(&[
        "report",
        &results_csv.display().to_string(),
        "--xlsx",
        &workbook.display().to_string(),
    ])
    .run()
    .await
    .assert_code(0);
    // In file order (rows are written as they finish), as the sheet has them.
    let rows = results(&results_csv);
    let mut book = open_workbook_auto(&workbook).expect("a workbook");
    assert_eq!(book.sheet_names(), ["Rows", "Summary"]);
    let sheet = book.worksheet_range("Rows").expect("rows sheet");
    let header: Vec<String> = sheet
        .rows()
        .next()
        .expect("header")
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(header.join(","), RESULTS_HEADER);
    assert_eq!(sheet.height(), rows.len() + 1);
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let mut dates = 0;
    for (cells, row) in sheet.rows().skip(1).zip(&rows) {
        assert_eq!(
            cells[col("row")],
            Data::Float(row["row"].parse().expect("a number"))
        );
        assert_eq!(cells[col("outcome")].to_string(), row["outcome"]);
        if !row["http_status"].is_empty() {
            assert!(
                matches!(cells[col("http_status")], Data::Float(_)),
                "{cells:?}"
            );
        }
        if !row["vetting_create_date"].is_empty() {
            assert!(
                matches!(cells[col("vetting_create_date")], Data::DateTime(_)),
                "{cells:?}"
            );
            dates += 1;
        }
    }
    assert!(dates > 0, "the sample's results hold vetting dates");
    let summary = book.worksheet_range("Summary").expect("summary sheet");
    let count = |label: &str| summary.rows().find(|r| r[0] == label).map(|r| r[1].clone());
    assert_eq!(count("rows"), Some(Data::Float(rows.len() as f64)));
    let created = rows.iter().filter(|r| r["outcome"] == "created").count();
    assert_eq!(
        count("created"),
        Some(Data::Float(created as f64)),
        "{:?}",
        summary.rows().collect::<Vec<_>>()
    );

    // The sheet's XML: the header row frozen, filters over every row.
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(&workbook).expect("open")).expect("zip");
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut archive
            .by_name("xl/worksheets/sheet1.xml")
            .expect("rows sheet xml"),
        &mut xml,
    )
    .expect("read");
    assert!(xml.contains(r#"state="frozen""#), "frozen header");
    assert!(
        xml.contains(&format!(r#"<autoFilter ref="A1:N{}""#, rows.len() + 1)),
        "filters"
    );

    // An export file, by its header.
    let export = dir.write(
        "e.csv",
        "customer_id,company_name,domain,qualification,vetting_status,vetting_reason,vetting_create_date\n\
         11111111-1111-4111-8111-000000000001,Northwind,northwind.example,Education,Approved,,2024-09-02T14:05:11Z\n",
    );
    let export_book = dir.join("e.xlsx");
    pcq(&[
        "report",
        &export.display().to_string(),
        "--xlsx",
        &export_book.display().to_string(),
    ])
    .run()
    .await
    .assert_code(0);
    let mut book = open_workbook_auto(&export_book).expect("a workbook");
    let sheet = book.worksheet_range("Rows").expect("rows sheet");
    assert_eq!(
        sheet.get((0, 0)).map(|c| c.to_string()).as_deref(),
        Some("customer_id")
    );
    assert!(
        matches!(sheet.get((1, 6)), Some(Data::DateTime(_))),
        "{:?}",
        sheet.get((1, 6))
    );
}
