//! What the binary reads: files as operators have them (semicolon, tab and pipe CSV, Excel's BOM
//! and CRLF, UTF-16 "Unicode text", Latin-1, workbooks, spreadsheet-style headers), standard input
//! and named pipes, and rows of every kind of garbage: each is run, refused or reported, never lost.

use crate::common::*;

fn validate(path: &str, extra: &[&str]) -> Finished {
    let mut args = vec!["validate", "-i", path];
    args.extend_from_slice(extra);
    pcq(&args).output()
}

/// The customer ids the simulator received POSTs for, sorted.
fn posted_customers(sim: &SimHandle) -> Vec<String> {
    let mut ids: Vec<String> = posts(sim)
        .iter()
        .map(|p| {
            p.path
                .split('/')
                .nth(3)
                .expect("customer id in the path")
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semicolon_export_with_bom_and_crlf_runs() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("semicolon");
    // What Excel writes as "CSV UTF-8" where the list separator is ';', with its own headers.
    let input = format!(
        "\u{feff}CustomerID;Qualification Type;Education Segment;Domain;School\r\n{};Education;K12;a.example.edu;\"Saint-Exupéry; Lyon\"\r\n{};StateOwnedEntity;;;Régie\r\n",
        cid(1),
        cid(2)
    );
    dir.write("in.csv", input);
    let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["row"].as_str(), rows[0]["outcome"].as_str()),
        ("1", "created")
    );
    assert_eq!(rows[1]["qualification"], "StateOwnedEntity");
    assert_eq!(posted_customers(&sim), [cid(1), cid(2)]);

    let output = validate(&dir.s("in.csv"), &[]);
    output.assert_code(0);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("UTF-8 with BOM, delimiter ';' (semicolon), detected from the header line"),
        "validate shows the decision: {stderr}"
    );
}

#[test]
fn tab_and_pipe_files_are_detected_and_the_flag_overrides() {
    let dir = work_dir("tabpipe");
    for (name, sep, shown) in [
        ("tab.tsv", "\t", "delimiter tab"),
        ("pipe.txt", "|", "delimiter '|' (pipe)"),
    ] {
        let input = format!(
            "Tenant ID{sep}Qualification{sep}Notes\n{}{sep}StateOwnedEntity{sep}a, b; c\n{}{sep}GCC{sep}\n",
            cid(1),
            cid(2)
        );
        dir.write(name, input);
        let output = validate(&dir.s(name), &[]);
        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.starts_with("row 2: validation_code: required"),
            "{stdout}"
        );
        assert!(stdout.contains("2 row(s): 1 valid, 1 invalid"), "{stdout}");
        assert!(
            text(&output.stderr).contains(&format!("{shown}, detected")),
            "{}",
            text(&output.stderr)
        );
    }
    // Forcing the wrong separator: the header cannot be read, and the message shows the split.
    let output = validate(&dir.s("tab.tsv"), &["--delimiter", "comma"]);
    output.assert_code(2);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("missing required column customer_id"),
        "{stderr}"
    );
    assert!(
        stderr.contains("split on ',' (comma) (from --delimiter), has 1 cell: [\"Tenant ID\\tQualification\\tNotes\"]"),
        "{stderr}"
    );
    let output = validate(&dir.s("tab.tsv"), &["--delimiter", "x"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a bad --delimiter is a usage error"
    );
}

#[test]
fn an_unreadable_header_shows_the_cells_and_suggests_the_delimiter() {
    let dir = work_dir("badheader");
    // Colon-separated: detection finds no candidate, so the line is one comma-split cell.
    dir.write(
        "colon.csv",
        format!("customer_id:qualification\n{}:StateOwnedEntity\n", cid(1)),
    );
    let output = validate(&dir.s("colon.csv"), &[]);
    output.assert_code(2);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("[\"customer_id:qualification\"]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("split on ',' (comma) (detected)"),
        "{stderr}"
    );
    assert!(stderr.contains("--delimiter"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    let output = validate(&dir.s("colon.csv"), &["--delimiter", ":"]);
    output.assert_code(0);
}

#[test]
fn spreadsheet_headers_are_recognised() {
    let dir = work_dir("aliases");
    for (i, header) in [
        "CustomerID,QualificationType,Validation Code,Education Segment,Website",
        "Customer Id,Qualification,Code,Segment,Domain",
        "Microsoft ID,Qualification Type,validation-code,SEGMENT,domain",
        "tenant_id,qualification,VALIDATION_CODE,education_segment,web site",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("h{i}.csv");
        dir.write(
            &name,
            format!(
                "{header}\n{},Education,,K12,x.edu\n{},GCC,482913,,\n",
                cid(1),
                cid(2)
            ),
        );
        let output = validate(&dir.s(&name), &[]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{header}: {}",
            text(&output.stdout)
        );
        assert!(
            text(&output.stdout).contains("2 row(s): 2 valid"),
            "{header}"
        );
    }
}

#[test]
fn utf16_unicode_text_exports_are_decoded() {
    let dir = work_dir("utf16");
    // Excel's "Unicode text": UTF-16 LE with BOM, tab-separated, CRLF.
    let content = format!(
        "\u{feff}Customer Id\tQualification\tSchool\r\n{}\tStateOwnedEntity\tÉcole Saint-Jean\r\n{}\tEducation\t学校\r\n",
        cid(1),
        cid(2)
    );
    let le: Vec<u8> = content.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = content.encode_utf16().flat_map(u16::to_be_bytes).collect();
    for (name, bytes, shown) in [("le.txt", le, "UTF-16 LE"), ("be.txt", be, "UTF-16 BE")] {
        dir.write(name, &bytes);
        let output = pcq(&[
            "run",
            "--dry-run",
            "-i",
            &dir.s(name),
            "-o",
            &dir.s(&format!("{name}.out.csv")),
            "--education-segment",
            "K12",
        ])
        .output();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: {}",
            text(&output.stderr)
        );
        let rows = results_by_row(&dir.join(&format!("{name}.out.csv")));
        assert_eq!(rows.len(), 2, "{name}");
        assert!(
            rows.iter().all(|r| r["outcome"] == "planned"),
            "{name}: {rows:?}"
        );
        assert_eq!(rows[1]["customer_id"], cid(2));
        let output = validate(&dir.s(name), &[]);
        assert!(
            text(&output.stderr).contains(shown),
            "{}",
            text(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latin1_file_is_refused_before_anything_is_sent() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("latin1");
    let mut input = format!(
        "customer_id,qualification,school\n{},StateOwnedEntity,Lyon\n{},StateOwnedEntity,Saint-",
        cid(1),
        cid(2)
    )
    .into_bytes();
    // "Exupéry" in Latin-1 (Excel's "CSV (Comma delimited)" on a Western-European system).
    input.extend_from_slice(b"Exup\xe9ry\n");
    dir.write("in.csv", &input);
    let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
    output.assert_code(2);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("not UTF-8"), "{stderr}");
    assert!(
        stderr.contains("line 3"),
        "names the first bad line: {stderr}"
    );
    assert!(
        stderr.contains("CSV UTF-8"),
        "says how to re-save it: {stderr}"
    );
    assert!(posts(&sim).is_empty(), "nothing was sent");
    assert!(!dir.join("out.csv").exists(), "no results file");

    // From standard input the file cannot be checked first: it stops at the bad line.
    let output = pcq(&["validate", "-i", "-"]).stdin(input).run().await;
    output.assert_code(2);
    assert!(
        text(&output.stderr).contains("line 3"),
        "{}",
        text(&output.stderr)
    );
}

/// A workbook as an operator saves it: header in row 1, a validation code typed as a number,
/// a date column, an empty row in the middle, and a second sheet.
fn write_workbook(path: &std::path::Path) {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("Customers").expect("name");
    for (c, h) in [
        "CustomerID",
        "Qualification",
        "Validation Code",
        "Added",
        "Name",
    ]
    .into_iter()
    .enumerate()
    {
        sheet
            .write_string(0, u16::try_from(c).expect("col"), h)
            .expect("write");
    }
    let date = Format::new().set_num_format("dd/mm/yyyy");
    let added = ExcelDateTime::from_ymd(2024, 3, 1).expect("date");
    for (r, id, q) in [
        (1u32, cid(1), "GCC"),
        (2, cid(2), "GovernmentCommunityCloud"),
        (4, cid(3), "StateOwnedEntity"),
    ] {
        sheet.write_string(r, 0, id).expect("write");
        sheet.write_string(r, 1, q).expect("write");
        if q != "StateOwnedEntity" {
            sheet.write_number(r, 2, 482913.0).expect("write");
        }
        sheet
            .write_datetime_with_format(r, 3, &added, &date)
            .expect("write");
        sheet.write_string(r, 4, "County office").expect("write");
    }
    let other = book.add_worksheet();
    other.set_name("Schools").expect("name");
    other.write_string(0, 0, "Tenant ID").expect("write");
    other.write_string(0, 1, "Qualification").expect("write");
    other.write_string(0, 2, "Segment").expect("write");
    other.write_string(1, 0, cid(4)).expect("write");
    other.write_string(1, 1, "Education").expect("write");
    other.write_string(1, 2, "K12").expect("write");
    book.save(path).expect("save");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xlsx_workbook_runs_with_the_sheets_row_numbers_and_codes_as_shown() {
    let sim = start_sim(SimConfig::default()).await;
    let env = sim_env(&sim);
    let dir = work_dir("xlsx");
    write_workbook(&dir.join("customers.xlsx"));
    let book = dir.s("customers.xlsx");
    let out = dir.s("out.csv");
    let output = pcq(&["run", "-i", &book, "-o", &out])
        .envs(&env)
        .run()
        .await;
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    let numbers: Vec<&str> = rows.iter().map(|r| r["row"].as_str()).collect();
    assert_eq!(numbers, ["2", "3", "5"], "the sheet's row numbers");
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{rows:?}");
    let gcc: Vec<serde_json::Value> = posts(&sim)
        .iter()
        .map(|p| serde_json::from_str(&p.body).expect("json"))
        .filter(|b: &serde_json::Value| b["validationCode"].is_string())
        .collect();
    assert_eq!(gcc.len(), 2);
    assert!(
        gcc.iter().all(|b| b["validationCode"] == "482913"),
        "{gcc:?}"
    );

    // --sheet picks another sheet; an unknown one lists the sheets.
    let output = pcq(&["validate", "-i", &book, "--sheet", "Schools"]).output();
    output.assert_code(0);
    assert_eq!(
        text(&output.stdout),
        "1 row(s): 1 valid, 0 invalid, 0 duplicate(s)\n"
    );
    assert!(
        text(&output.stderr).contains("sheet \"Schools\""),
        "{}",
        text(&output.stderr)
    );
    let output = pcq(&["validate", "-i", &book, "--sheet", "Nope"]).output();
    output.assert_code(2);
    assert!(
        text(&output.stderr).contains("its sheets are: \"Customers\", \"Schools\""),
        "{}",
        text(&output.stderr)
    );

    // Resume over a workbook: the settled rows (by sheet row number) are not sent again.
    let before = posts(&sim).len();
    let output = pcq(&["run", "--resume", "-i", &book, "-o", &out])
        .envs(&env)
        .run()
        .await;
    output.assert_code(0);
    assert_eq!(posts(&sim).len(), before, "nothing sent twice");
    assert_eq!(results_by_row(&dir.join("out.csv")).len(), 3);
}

#[test]
fn ods_and_xls_fixtures_are_read() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in ["customers.ods", "customers.xls"] {
        let path = fixtures.join(name);
        let output = pcq(&["validate", "-i", &path.display().to_string()]).output();
        let stdout = text(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{name}: {stdout} {}",
            text(&output.stderr)
        );
        // Row 3 of the sheet has a broken id; the GCC code is a number cell.
        assert!(
            stdout.starts_with("row 3: customer_id: not a GUID: not-a-guid"),
            "{name}: {stdout}"
        );
        assert!(
            stdout.contains("3 row(s): 2 valid, 1 invalid"),
            "{name}: {stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_input_with_the_auto_code_is_read_once_and_kept_for_the_check() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("stdin-auto");
    let mut input = String::from("customer_id;qualification;validation_code\n");
    for i in 1..=3 {
        input.push_str(&format!("{};GCC;\n", cid(i)));
    }
    let out = dir.s("out.csv");
    let output = pcq(&["run", "-i", "-", "-o", &out, "--validation-code", "auto"])
        .envs(&sim_env(&sim))
        .stdin(input.into_bytes())
        .run()
        .await;
    output.assert_code(0);
    assert_eq!(results_by_row(&dir.join("out.csv")).len(), 3);
    assert_eq!(posted_customers(&sim), [cid(1), cid(2), cid(3)]);

    // A workbook on standard input is refused with a reason.
    write_workbook(&dir.join("b.xlsx"));
    let bytes = std::fs::read(dir.join("b.xlsx")).expect("read");
    let output = pcq(&["validate", "-i", "-"]).stdin(bytes).run().await;
    output.assert_code(2);
    assert!(
        text(&output.stderr).contains("looks like a workbook"),
        "{}",
        text(&output.stderr)
    );
}

/// A named pipe (what `--input <(zcat customers.csv.gz)` gives) is read once, like stdin.
#[cfg(unix)]
#[test]
fn a_named_pipe_is_read_as_a_stream() {
    let dir = work_dir("fifo");
    let fifo = dir.join("rows.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let rows = format!(
                "customer_id;qualification\n{};StateOwnedEntity\nbad;StateOwnedEntity\n",
                cid(1)
            );
            std::fs::write(&fifo, rows).expect("write to the pipe");
        })
    };
    let output = validate(&fifo.display().to_string(), &[]);
    writer.join().expect("writer");
    output.assert_code(1);
    assert_eq!(
        text(&output.stdout),
        "row 2: customer_id: not a GUID: bad\n2 row(s): 1 valid, 1 invalid, 0 duplicate(s)\n"
    );
}

/// The samples read the same, whatever their format; `UPDATE_SAMPLES=1` rewrites the workbook
/// from samples/customers.csv.
#[test]
fn the_sample_files_agree() {
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    if std::env::var_os("UPDATE_SAMPLES").is_some() {
        write_sample_workbook(
            &samples.join("customers.csv"),
            &samples.join("customers.xlsx"),
        );
    }
    let summary = |name: &str| {
        let output = validate(&samples.join(name).display().to_string(), &[]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{name}: {}",
            text(&output.stderr)
        );
        let stdout = text(&output.stdout);
        stdout.lines().last().expect("total").to_string()
    };
    let csv = summary("customers.csv");
    assert!(csv.contains(" row(s): "), "a total line: {csv}");
    assert_eq!(summary("customers-semicolon.csv"), csv);
    assert_eq!(summary("customers.xlsx"), csv);
}

fn write_sample_workbook(csv_path: &std::path::Path, xlsx: &std::path::Path) {
    use rust_xlsxwriter::Workbook;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(csv_path)
        .expect("sample csv");
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("Customers").expect("name");
    for (r, record) in reader.records().enumerate() {
        let record = record.expect("record");
        let r = u32::try_from(r).expect("row");
        for (c, cell) in record.iter().enumerate() {
            let c = u16::try_from(c).expect("col");
            // Validation codes typed into Excel become numbers.
            match cell.parse::<f64>() {
                Ok(n) if r > 0 && !cell.is_empty() => sheet.write_number(r, c, n),
                _ => sheet.write_string(r, c, cell),
            }
            .expect("write");
        }
    }
    sheet.autofit();
    book.save(xlsx).expect("save");
}

/// Two good rows, then a Latin-1 byte on line 4 (row 3), then a good row.
fn latin1_at_row_3(qualification: &str) -> Vec<u8> {
    let mut bytes = format!(
        "customer_id,qualification,note\n{},{qualification},ok\n{},{qualification},ok\n{},{qualification},Mus",
        cid(1),
        cid(2),
        cid(3)
    )
    .into_bytes();
    bytes.extend_from_slice(b"\xe9e\n");
    bytes.extend_from_slice(format!("{},{qualification},ok\n", cid(4)).as_bytes());
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_standard_input_stops_at_a_non_utf8_line_naming_the_last_row_sent() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("stdin-latin1");
    let out = dir.s("out.csv");
    let output = pcq(&["run", "-i", "-", "-o", &out, "--rate", "0"])
        .envs(&sim_env(&sim))
        .stdin(latin1_at_row_3("StateOwnedEntity"))
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(1);
    assert!(
        stderr.contains("not UTF-8") && stderr.contains("line 4"),
        "{stderr}"
    );
    assert!(
        stderr.contains("every row up to row 2 (the last one read)"),
        "{stderr}"
    );
    let rows: Vec<String> = results_by_row(&dir.join("out.csv"))
        .iter()
        .map(|r| r["row"].clone())
        .collect();
    assert_eq!(rows, ["1", "2"]);
    assert_eq!(posts(&sim).len(), 2, "nothing after the bad line was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_standard_input_is_refused_before_anything_is_sent() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("stdin-latin1-auto");
    let out = dir.s("out.csv");
    let output = pcq(&["run", "-i", "-", "-o", &out, "--validation-code", "auto"])
        .envs(&sim_env(&sim))
        .stdin(latin1_at_row_3("GCC"))
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(
        stderr.contains("not UTF-8") && stderr.contains("line 4"),
        "{stderr}"
    );
    assert!(sim.api_requests().is_empty(), "nothing was sent");
    assert!(!dir.join("out.csv").exists(), "no results file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_only_input_is_an_empty_successful_run() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("headeronly");
    dir.write("in.csv", "\u{feff}customer_id,qualification\r\n");
    let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
    output.assert_code(0);
    assert!(results(&dir.join("out.csv")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_and_stdout_can_stand_in_for_files() {
    let sim = start_sim(SimConfig::default()).await;
    let input = format!(
        "customer_id,qualification\n{},StateOwnedEntity\nnope,Education\n",
        cid(1)
    );
    let output = pcq(&["run", "-q", "--input", "-", "--output", "-"])
        .envs(&sim_env(&sim))
        .stdin(input)
        .run()
        .await;
    output.assert_code(1);
    let stdout = text(&output.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some(RESULTS_HEADER));
    assert_eq!(lines.count(), 2);
    assert!(stdout.contains(",created,201,"));
    assert!(stdout.contains(",invalid,"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_input_of_every_kind_is_reported_not_lost() {
    let sim = start_sim(SimConfig::default()).await;
    let env = sim_env(&sim);
    let dir = work_dir("garbage");
    // A cell of nearly 1 MiB: its row stays under the default --max-record-bytes (1 MiB).
    let big = "x".repeat((1 << 20) - 1024);
    let mut input = b"customer_id,qualification,notes\n".to_vec();
    input.extend_from_slice(format!("{},StateOwnedEntity,\"{big}\"\n", cid(1)).as_bytes());
    input.extend_from_slice(
        format!("{},StateOwnedEntity,café \u{fffd}\u{feff}\n", cid(2)).as_bytes(),
    );
    // (Bytes that are not UTF-8 stop the file before anything is sent: a_latin1_file_is_refused_before_anything_is_sent, above.)
    input.extend_from_slice("ünï\u{fffd}-not-a-guid,StateOwnedEntity,\n".as_bytes());
    input.extend_from_slice(b"=HYPERLINK(\"http://x\"),StateOwnedEntity,\n");
    input.extend_from_slice(format!("{}\n", cid(3)).as_bytes());
    input.extend_from_slice(format!("{},\"StateOwnedEntity,\n", cid(4)).as_bytes());
    dir.write("in.csv", &input);
    let output = pcq_io("run", &dir, &[]).envs(&env).run().await;
    output.assert_code(1);
    let raw = std::fs::read(dir.join("out.csv")).expect("results");
    assert!(
        std::str::from_utf8(&raw).is_ok(),
        "the results file is UTF-8"
    );
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows.len(), 6, "one results row per data record");
    assert_eq!(
        rows[0]["outcome"], "created",
        "a 1 MB cell in an ignored column is fine"
    );
    assert_eq!(
        rows[1]["outcome"], "created",
        "odd characters in an ignored column are fine"
    );
    assert_eq!(rows[2]["outcome"], "invalid");
    assert!(rows[2]["customer_id"].starts_with("ünï\u{fffd}"));
    assert_eq!(rows[3]["outcome"], "invalid");
    assert!(
        rows[3]["customer_id"].starts_with("'="),
        "defused for spreadsheets"
    );
    assert_eq!(rows[4]["outcome"], "invalid");
    assert!(
        rows[4]["error_message"].starts_with("qualification"),
        "{:?}",
        rows[4]
    );
    assert_eq!(rows[5]["outcome"], "invalid");

    // Files that cannot be runs at all.
    dir.write("empty.csv", "");
    let cases = [
        (dir.s("empty.csv"), dir.s("o1.csv"), "empty"),
        (dir.s("nope.csv"), dir.s("o2.csv"), "nope.csv"),
        (dir.s("in.csv"), dir.s("missing-dir/o3.csv"), "missing-dir"),
    ];
    for (input, out, needle) in cases {
        let output = pcq(&["run", "-i", &input, "-o", &out])
            .envs(&env)
            .run()
            .await;
        let stderr = text(&output.stderr);
        output.assert_code(2);
        assert!(stderr.contains(needle), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_never_reach_the_results() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("nul");
    let mut input = b"customer_id,qualification\n".to_vec();
    input.extend_from_slice(b"aaaa\x00bbbb\x07,StateOwnedEntity\n");
    input.extend_from_slice(format!("{},State\x00Owned\x1bEntity\n", cid(2)).as_bytes());
    input.extend_from_slice(format!("{},StateOwnedEntity\n", cid(3)).as_bytes());
    dir.write("in.csv", &input);
    let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
    output.assert_code(1);
    let raw = std::fs::read(dir.join("out.csv")).expect("results");
    assert!(
        !raw.iter().any(|b| *b < 0x20 && *b != b'\n'),
        "no control character in any cell: {}",
        String::from_utf8_lossy(&raw)
    );
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["customer_id"], "aaaabbbb");
    assert_eq!(rows[2]["outcome"], "created");
}

/// Issue 22: a stream in which no row ends (`/dev/zero`) is refused in bounded memory, where it
/// once grew past 9 GB; the limit is `--max-record-bytes` (1 MiB by default).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_record_is_refused_in_bounded_memory() {
    let output = pcq(&["validate", "--input", "/dev/zero"]).run().await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(stderr.contains("no record ends within"), "{stderr}");
    // The largest child this test process has waited for: every pc-qualify run here stays far
    // below the bound, so one that read the stream whole would show.
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_CHILDREN is a valid selector.
    let usage = unsafe {
        assert_eq!(
            libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()),
            0
        );
        usage.assume_init()
    };
    let peak_kib = u64::try_from(usage.ru_maxrss).expect("a size");
    assert!(peak_kib < 100 * 1024, "peak RSS {peak_kib} KiB");
}

/// A row longer than the limit (one 3 MB cell) is `invalid` with a message, the rows around it
/// are sent, and the cell is not copied into the results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_longer_than_the_limit_is_invalid_and_the_rest_are_sent() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("longrow");
    let long = "x".repeat(3 << 20);
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification\n{},StateOwnedEntity\n{long},StateOwnedEntity\n{},StateOwnedEntity\n",
            cid(1),
            cid(2)
        ),
    );
    let output = pcq_io(
        "run",
        &dir,
        &["--rate", "0", "--max-record-bytes", "2097152"],
    )
    .envs(&sim_env(&sim))
    .run()
    .await;
    output.assert_code(1);
    let rows = results_by_row(&dir.join("out.csv"));
    let outcomes: Vec<&str> = rows.iter().map(|r| r["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["created", "invalid", "created"]);
    assert!(
        rows[1]["error_message"].contains("more than the 2097152 a row may hold"),
        "{:?}",
        rows[1]
    );
    let size = std::fs::metadata(dir.join("out.csv"))
        .expect("results")
        .len();
    assert!(size < 10_000, "the long cell is not copied: {size} bytes");
    assert_eq!(posts(&sim).len(), 2);
}
