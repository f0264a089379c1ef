//! Results files that a spreadsheet re-saved (another separator, a byte-order mark, CRLF, moved or
//! added columns) are read by `refresh`, `report` and `run --resume`; `--resume` rewrites them in
//! the documented form; a file without a required column is refused before anything is sent.

use std::collections::HashSet;

use crate::common::*;

/// How a spreadsheet saved the results file.
struct Resave {
    name: &'static str,
    /// Column names in the saved order; a name that is not a results column is the spreadsheet
    /// user's own, with a note in every row.
    order: Vec<&'static str>,
    separator: u8,
    crlf: bool,
    bom: bool,
}

fn standard() -> Vec<&'static str> {
    RESULTS_HEADER.split(',').collect()
}

/// Excel's "CSV UTF-8" in a locale whose list separator is `;`.
fn excel() -> Resave {
    Resave {
        name: "excel",
        order: standard(),
        separator: b';',
        crlf: true,
        bom: true,
    }
}

/// Columns dragged into another order, saved tab-separated.
fn moved() -> Resave {
    let mut order = standard();
    order.reverse();
    order.swap(0, 5);
    Resave {
        name: "moved",
        order,
        separator: b'\t',
        crlf: false,
        bom: false,
    }
}

/// A `notes` column added after `outcome`.
fn extra() -> Resave {
    let mut order = standard();
    order.insert(4, "notes");
    Resave {
        name: "extra",
        order,
        separator: b',',
        crlf: false,
        bom: false,
    }
}

/// The standard results `text` saved as `how` says, with only the rows `keep` accepts.
fn resave(text: &str, how: &Resave, keep: impl Fn(u64) -> bool) -> Vec<u8> {
    let rows = csv_rows(text, RESULTS_HEADER);
    let mut out = Vec::new();
    if how.bom {
        out.extend_from_slice("\u{feff}".as_bytes());
    }
    let mut writer = csv::WriterBuilder::new()
        .delimiter(how.separator)
        .terminator(if how.crlf {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        })
        .from_writer(&mut out);
    writer.write_record(&how.order).expect("header");
    for row in rows {
        if !keep(row["row"].parse().expect("row number")) {
            continue;
        }
        let cells = how.order.iter().map(|name| {
            row.get(*name)
                .map_or("a note; with, \"quotes\"", String::as_str)
        });
        writer.write_record(cells).expect("row");
    }
    writer.flush().expect("flush");
    drop(writer);
    out
}

/// The results rows without the vetting columns, which a refresh brings up to date.
fn without_vetting(
    rows: Vec<std::collections::HashMap<String, String>>,
) -> Vec<std::collections::HashMap<String, String>> {
    rows.into_iter()
        .map(|mut row| {
            row.retain(|name, _| !name.starts_with("vetting_"));
            row
        })
        .collect()
}

/// `report` of `results`: its exit code and standard error, and the page without its line that
/// holds the time.
async fn report_page(
    results: &std::path::Path,
    html: &std::path::Path,
) -> (Option<i32>, String, String) {
    let output = pcq(&[
        "report",
        &results.display().to_string(),
        "--html",
        &html.display().to_string(),
    ])
    .run()
    .await;
    let page = std::fs::read_to_string(html).unwrap_or_default();
    let page = page
        .lines()
        .filter(|line| !line.contains("generated "))
        .collect::<Vec<_>>()
        .join("\n");
    (output.status.code(), text(&output.stderr), page)
}

/// A run of six rows, then the re-saved results through `refresh`, `report` and `run --resume`.
async fn resaved_results_are_read_everywhere(how: Resave) {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir(how.name);
    dir.write("in.csv", soe_rows(6));
    let env = sim_env(&sim);
    let output = pcq_io("run", &dir, &["--rate", "0"]).envs(&env).run().await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let original = std::fs::read_to_string(dir.join("out.csv")).expect("results");
    let before = results_by_row(&dir.join("out.csv"));
    assert_eq!(before.len(), 6);

    // refresh: reads every created row again, posts nothing, writes the standard form.
    dir.write("resaved.csv", resave(&original, &how, |_| true));
    let (requests, posted) = (sim.api_requests().len(), posts(&sim).len());
    let output = pcq(&[
        "refresh",
        "-i",
        &dir.s("resaved.csv"),
        "-o",
        &dir.s("refreshed.csv"),
    ])
    .envs(&env)
    .run()
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(posts(&sim).len(), posted, "refresh never posts");
    let reads = sim.api_requests()[requests..]
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(reads, 6, "one read per created row");
    let refreshed = results_by_row(&dir.join("refreshed.csv"));
    assert!(refreshed.iter().all(|r| !r["vetting_status"].is_empty()));
    assert_eq!(without_vetting(refreshed), without_vetting(before.clone()));

    // report: the same page as for the file as written.
    std::fs::create_dir(dir.join("as-written")).expect("dir");
    std::fs::create_dir(dir.join("resaved")).expect("dir");
    std::fs::write(dir.join("as-written/results.csv"), &original).expect("copy");
    std::fs::write(
        dir.join("resaved/results.csv"),
        resave(&original, &how, |_| true),
    )
    .expect("copy");
    let (code, _, expected) = report_page(
        &dir.join("as-written/results.csv"),
        &dir.join("as-written.html"),
    )
    .await;
    assert_eq!(code, Some(0));
    assert!(expected.contains(r#"data-outcome="created"><b>6</b>"#));
    let (code, _, page) =
        report_page(&dir.join("resaved/results.csv"), &dir.join("resaved.html")).await;
    assert_eq!(code, Some(0));
    assert_eq!(page, expected);

    // run --resume: the re-saved file lacks rows 2 and 5; only those are posted, and the file
    // ends in the documented form with one row per input row.
    dir.write(
        "out.csv",
        resave(&original, &how, |row| row != 2 && row != 5),
    );
    let posted = posts(&sim).len();
    let output = pcq_io("run", &dir, &["--resume", "--rate", "0"])
        .envs(&env)
        .run()
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let resumed: HashSet<String> = posts(&sim)[posted..]
        .iter()
        .map(|p| p.path.split('/').nth(3).unwrap_or_default().to_string())
        .collect();
    assert_eq!(posts(&sim).len() - posted, 2, "{resumed:?}");
    assert_eq!(resumed, HashSet::from([cid(2), cid(5)]));
    let bytes = std::fs::read(dir.join("out.csv")).expect("results");
    assert!(bytes.starts_with(format!("{RESULTS_HEADER}\n").as_bytes()));
    assert!(!bytes.contains(&b'\r') && !bytes.contains(&b';') && !bytes.contains(&b'\t'));
    let after = results_by_row(&dir.join("out.csv"));
    let numbers: Vec<&str> = after.iter().map(|r| r["row"].as_str()).collect();
    assert_eq!(numbers, ["1", "2", "3", "4", "5", "6"]);
    for (row, was) in after.iter().zip(&before) {
        if row["row"] == "2" || row["row"] == "5" {
            // Posted again: the service already holds them from the first run.
            assert_eq!(row["outcome"], "exists", "{row:?}");
            assert_eq!(row["customer_id"], was["customer_id"]);
        } else {
            assert_eq!(row, was, "a carried row is kept as it was");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_excel_resave_is_read_by_refresh_report_and_resume() {
    resaved_results_are_read_everywhere(excel()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_columns_are_read_by_refresh_report_and_resume() {
    resaved_results_are_read_everywhere(moved()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_column_is_read_by_refresh_report_and_resume() {
    resaved_results_are_read_everywhere(extra()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_a_required_column_is_refused_before_anything_is_sent() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("missing");
    dir.write("in.csv", soe_rows(3));
    let env = sim_env(&sim);
    let output = pcq_io("run", &dir, &["--rate", "0"]).envs(&env).run().await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let original = std::fs::read_to_string(dir.join("out.csv")).expect("results");
    let mut how = excel();
    how.order.retain(|name| *name != "outcome");
    let damaged = resave(&original, &how, |row| row != 3);
    dir.write("out.csv", &damaged);
    let requests = sim.api_requests().len();
    let names_it = |stderr: &str| {
        stderr.contains("column `outcome` is missing; the header has: row, customer_id,")
    };

    let output = pcq(&["refresh", "-i", &dir.s("out.csv"), "-o", &dir.s("r.csv")])
        .envs(&env)
        .run()
        .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(names_it(&stderr), "{stderr}");
    assert!(!dir.join("r.csv").exists());

    let (code, stderr, _) = report_page(&dir.join("out.csv"), &dir.join("r.html")).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(names_it(&stderr), "{stderr}");
    assert!(!dir.join("r.html").exists());

    let output = pcq_io("run", &dir, &["--resume", "--rate", "0"])
        .envs(&env)
        .run()
        .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(names_it(&stderr), "{stderr}");
    assert_eq!(std::fs::read(dir.join("out.csv")).expect("kept"), damaged);
    assert_eq!(sim.api_requests().len(), requests, "nothing was sent");

    // A header split by none of the separators names what it saw.
    let colons = original.replacen(',', ":", 13);
    dir.write("colons.csv", colons);
    let output = pcq(&["report", &dir.s("colons.csv"), "--html", &dir.s("c.html")])
        .run()
        .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "no `,`, `;` or tab separates the names in its first line: \"row:customer_id:"
        ),
        "{stderr}"
    );
}

/// Issue 22: a spreadsheet's (CRLF) results file with a bad first row was reported at "line 1",
/// and a row numbered 0 made `--resume` say the input had fewer rows than the results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_is_named_by_its_line_and_a_row_0_is_refused() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("badline");
    dir.write("in.csv", soe_rows(3));
    let env = sim_env(&sim);
    pcq_io("run", &dir, &["--rate", "0"])
        .envs(&env)
        .run()
        .await
        .assert_code(0);
    let original = std::fs::read_to_string(dir.join("out.csv")).expect("results");
    let saved = String::from_utf8(resave(&original, &excel(), |_| true)).expect("utf-8");
    let damaged = saved.replacen("\r\n", "\r\nnot a row\r\n", 1);
    dir.write("damaged.csv", damaged);
    let (code, stderr, _) = report_page(&dir.join("damaged.csv"), &dir.join("r.html")).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("damaged.csv: line 2: has 1 fields"),
        "{stderr}"
    );

    // Row 1 renumbered 0: the line is named, and no claim about the input's length is made.
    let lines: Vec<&str> = original.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("1,"))
        .expect("row 1");
    let zero: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == at {
                format!("0{}", &l[1..])
            } else {
                l.to_string()
            }
        })
        .collect();
    dir.write("out.csv", zero.join("\n") + "\n");
    let requests = sim.api_requests().len();
    let output = pcq_io("run", &dir, &["--resume", "--rate", "0"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(2);
    let stderr = output.stderr();
    let line = at + 1;
    assert!(
        stderr.contains(&format!("line {line}: row out of range: 0")),
        "{stderr}"
    );
    assert!(!stderr.contains("fewer rows"), "{stderr}");
    assert_eq!(sim.api_requests().len(), requests, "nothing was sent");
}
