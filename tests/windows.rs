//! What a partner admin on Windows does, run against the Windows build under Wine by
//! `.ci/wine-tests` (the filter `windows::`) and against the native binary by `cargo test`: the
//! quick start, `--resume` after it (the rename over the results file that Windows refused while
//! the file was still open: issue 21), the lock refusing a second run, a results file open in
//! another program, and the resume hint pasted into the user's shell.
//!
//! Tests named `wine_only_` mean something only against the Windows build (Windows share modes,
//! cmd.exe): the native pass of `.ci/run` leaves them out by name and `common::wine_only` says so
//! when they are run natively. The signal tests (`signals`) send Unix signals and are not run
//! under Wine.

use std::path::{Path, PathBuf};

use crate::common::*;

/// The sample of the quick start.
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/customers.csv");

/// `path` as the program under test names it: a Windows path on Wine's `Z:` drive (the Linux
/// root) under Wine, so hints and messages hold what a Windows user would type.
fn native(path: &Path) -> String {
    if under_wine() {
        format!("Z:{}", path.display()).replace('/', "\\")
    } else {
        path.display().to_string()
    }
}

/// The quick start as README.md gives it, in `dir` (which gets the sample under `samples/`).
async fn quick_start(dir: &TempDir, resume: bool) -> Finished {
    std::fs::create_dir_all(dir.join("samples")).expect("samples folder");
    std::fs::copy(SAMPLE, dir.join("samples/customers.csv")).expect("copy the sample");
    let mut args = vec!["run"];
    if resume {
        args.push("--resume");
    }
    args.extend([
        "--sandbox",
        "--input",
        "samples/customers.csv",
        "--output",
        "results.csv",
    ]);
    pcq(&args).current_dir(dir.path()).run().await
}

/// The summary's `rows:` line.
fn rows_line(stderr: &str) -> &str {
    stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("rows:"))
        .unwrap_or_else(|| panic!("no rows line in {stderr}"))
}

/// The command the summary prints to finish or retry the rows (the line after the hint).
fn resume_hint(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_end().ends_with(" run:") || l.trim_end().ends_with(" with:"))
        .unwrap_or_else(|| panic!("no resume hint in {stderr}"));
    lines[at + 1].trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_exits_1_with_the_documented_counts_and_resumes_sending_nothing_twice() {
    let dir = work_dir("quick-start");
    let first = quick_start(&dir, false).await;
    first.assert_code(1);
    let stderr = first.stderr();
    assert_eq!(
        rows_line(&stderr),
        "rows: created 28, exists 4, failed 2, invalid 5, duplicate 1",
        "{stderr}"
    );
    assert_eq!(
        resume_hint(&stderr),
        "pc-qualify run --resume --sandbox --input samples/customers.csv --output results.csv"
    );
    let before = results_by_row(&dir.join("results.csv"));
    assert_eq!(before.len(), 40);

    // Resuming rewrites the results file to its settled rows (temp file and rename) and retries
    // the failed ones; Windows refused that rename while the file was still open ("Access denied
    // (os error 5)").
    let second = quick_start(&dir, true).await;
    second.assert_code(1);
    let stderr = second.stderr();
    assert!(!stderr.contains("os error"), "{stderr}");
    // Before the rows: a resume that sent nothing says so with what it printed. (A local run
    // under Wine once saw a failed row come back unchanged, request id and all, from a resume
    // that exited 1 as expected.)
    assert!(
        stderr.contains("requests: 2 "),
        "only the two failed rows are sent again: {stderr}"
    );
    assert_rows_exactly_once(&dir.join("results.csv"), 40);
    let after = results_by_row(&dir.join("results.csv"));
    let mut resent = 0;
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old["row"], new["row"]);
        if old["outcome"] == "failed" {
            // Sent again, with a new request id (the service sees a new request).
            assert_ne!(
                old["request_id"], new["request_id"],
                "row {} not sent again: {new:?}\nsecond run's stderr:\n{stderr}",
                old["row"]
            );
            resent += 1;
        } else {
            // Carried over as it was: not sent again.
            assert_eq!(old, new, "row {} changed on resume", old["row"]);
        }
    }
    assert_eq!(resent, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_a_results_file_in_use_is_refused_and_sends_nothing() {
    let (sim, dir, env) = sim_and_rows("win-lock", 20, 100).await;
    let (input, out) = (native(&dir.join("in.csv")), native(&dir.join("out.csv")));
    let mut first = pcq(&["run", "-i", &input, "-o", &out])
        .args(&["--rate", "0", "--concurrency", "1"])
        .envs(&env)
        .spawn();
    let lock = dir.join("out.csv.lock");
    first
        .wait_until("the first run's lock", || {
            lock.exists() && dir.join("out.csv").exists()
        })
        .await;
    for extra in ["--force", "--resume"] {
        let output = pcq(&["run", "-i", &input, "-o", &out, extra])
            .envs(&env)
            .run()
            .await;
        output.assert_code(2);
        let stderr = output.stderr();
        assert!(
            stderr.contains("in use by") && stderr.contains("nothing was sent"),
            "{extra}: {stderr}"
        );
        // The lock file is named as the user would write it, not in Windows's verbatim form.
        assert!(
            stderr.contains(&format!("(lock file {out}.lock)")),
            "{extra}: {stderr}"
        );
    }
    first.finish().await.assert_code(0);
    assert_rows_exactly_once(&dir.join("out.csv"), 20);
    assert_eq!(posts(&sim).len(), 20, "the refused runs sent nothing");
    assert_created_under_one_request_id(&sim);
    assert!(!lock.exists(), "the lock file goes with its run");
}

/// Issue 21's "done when": a run stopped mid-way and resumed loses no row and posts none twice.
/// Under Wine the stop is a SIGINT to the Wine process, which Wine turns into a CTRL_C_EVENT for
/// the program's console handlers, as when Ctrl-C is pressed in the terminal running it (Wine
/// 8's GenerateConsoleCtrlEvent fails without a console, error 12, and its taskkill without /F
/// only closes windows, so Ctrl-C is the console event Wine delivers). Natively, SIGINT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_with_ctrl_c_mid_way_resumes_posting_every_row_exactly_once() {
    let (sim, dir, env) = sim_and_rows("win-ctrl-c", 60, 100).await;
    let (input, out) = (native(&dir.join("in.csv")), native(&dir.join("out.csv")));
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "-i",
            &input,
            "-o",
            &out,
            "--rate",
            "0",
            "--concurrency",
            "2",
        ];
        args.extend(extra);
        pcq(&args).envs(&env)
    };
    let mut first = run(&[]).spawn();
    // Mid-way: rows on file, most still to come. (Under Wine the kernel shows Wine's own signal
    // handlers, so only the rows say the run is under way; its handlers were set up before.)
    let results = dir.join("out.csv");
    first
        .wait_until("4 rows in the results file", || {
            std::fs::read_to_string(&results).is_ok_and(|t| t.lines().count() > 4)
        })
        .await;
    if !under_wine() {
        first.wait_for_signal_handlers().await;
    }
    first.signal("INT");
    let stopped = first.finish().await;
    stopped.assert_code(130);
    assert!(
        stopped.stderr().contains("--resume"),
        "{}",
        stopped.stderr()
    );
    let before = row_numbers(&results).len();
    assert!((1..60).contains(&before), "stopped mid-way: {before} rows");

    run(&["--resume"]).run().await.assert_code(0);
    assert_rows_exactly_once(&results, 60);
    let by_customer = posts_by_customer(&sim);
    assert_eq!(by_customer.len(), 60, "every row posted");
    for (customer, ids) in by_customer {
        assert_eq!(ids.len(), 1, "{customer} was posted {} times", ids.len());
    }
    assert!(results_by_row(&results)
        .iter()
        .all(|r| r["outcome"] == "created"));
}

/// The message for a file another program holds open.
const OPEN_ELSEWHERE: &str = "is open in another program (Excel?); close it and run again";

/// `wine hold-open.exe FILE` (built by `.ci/wine-tests`, path in `PCQ_TEST_HOLD_OPEN`): holds
/// `file` open as Excel holds a workbook until its standard input closes.
async fn hold_open(file: &Path) -> Running {
    let (runner, _) = binary();
    let helper = std::env::var("PCQ_TEST_HOLD_OPEN")
        .expect("PCQ_TEST_HOLD_OPEN names hold-open.exe (.ci/wine-tests builds it)");
    let mut holder = Cmd::new(runner.expect("under Wine"))
        .args(&[&helper, &native(file)])
        .stdin("")
        .spawn();
    holder
        .wait_for_stdout("the file held open", |out| out.contains("held"))
        .await;
    holder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wine_only_a_results_file_open_in_another_program_is_refused_and_left_unchanged() {
    if !wine_only() {
        return;
    }
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("win-open");
    let good = soe_rows(3);
    dir.write("in.csv", format!("{good}{},Educaton\n", cid(4)));
    let env = sim_env(&sim);
    let (input, out) = (native(&dir.join("in.csv")), native(&dir.join("out.csv")));
    pcq(&["run", "-i", &input, "-o", &out])
        .envs(&env)
        .run()
        .await
        .assert_code(1);
    // The user fixes the typo, but the results are still open in Excel.
    dir.write("in.csv", format!("{good}{},StateOwnedEntity\n", cid(4)));
    let results = dir.join("out.csv");
    let earlier = std::fs::read(&results).expect("results");
    let sent = posts(&sim).len();
    let holder = hold_open(&results).await;
    for extra in ["--resume", "--force"] {
        let output = pcq(&["run", "-i", &input, "-o", &out, extra])
            .envs(&env)
            .run()
            .await;
        output.assert_code(2);
        let stderr = output.stderr();
        assert!(
            stderr.contains(&format!("{out} {OPEN_ELSEWHERE}")),
            "{extra}: {stderr}"
        );
        assert_eq!(
            std::fs::read(&results).expect("results"),
            earlier,
            "{extra} changed the file"
        );
        assert_eq!(posts(&sim).len(), sent, "{extra} sent rows");
    }
    // The report page open in a browser's editor is refused the same way.
    let html = dir.write("report.html", "<p>earlier</p>");
    let page_holder = hold_open(&html).await;
    let output = pcq(&["report", &out, "--html", &native(&html)]).run().await;
    output.assert_code(2);
    assert!(
        output.stderr().contains(OPEN_ELSEWHERE),
        "{}",
        output.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(&html).expect("page"),
        "<p>earlier</p>"
    );
    page_holder.finish().await.assert_code(0);

    // Closed in Excel, the same command finishes the file.
    holder.finish().await.assert_code(0);
    pcq(&["run", "-i", &input, "-o", &out, "--resume"])
        .envs(&env)
        .run()
        .await
        .assert_code(0);
    assert_rows_exactly_once(&results, 4);
    assert_eq!(posts(&sim).len(), sent + 1, "only the fixed row is sent");
}

/// The export file open in Excel: `--resume` rewrites it (temp file and rename) and `--force`
/// replaces it; both are refused as the results file is, before anything changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wine_only_an_export_open_in_another_program_is_refused_and_left_unchanged() {
    if !wine_only() {
        return;
    }
    let dir = work_dir("win-export-open");
    let out = native(&dir.join("customers.csv"));
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "--sandbox", "-o", &out];
        args.extend(extra);
        pcq(&args)
    };
    export(&[]).run().await.assert_code(0);
    let file = dir.join("customers.csv");
    let earlier = std::fs::read(&file).expect("export");
    let holder = hold_open(&file).await;
    for extra in ["--resume", "--force"] {
        let output = export(&[extra]).run().await;
        output.assert_code(2);
        let stderr = output.stderr();
        assert!(
            stderr.contains(&format!("{out} {OPEN_ELSEWHERE}")),
            "{extra}: {stderr}"
        );
        assert_eq!(std::fs::read(&file).expect("export"), earlier, "{extra}");
    }
    holder.finish().await.assert_code(0);
    export(&["--resume"]).run().await.assert_code(0);
}

/// `Out.csv` and `out.csv` are one file on Windows even before it exists: naming it for the
/// results and for `--metrics` is refused before anything is sent, as the same spelling is,
/// rather than the metrics file replacing the results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wine_only_an_output_and_metrics_differing_only_in_case_are_refused() {
    if !wine_only() {
        return;
    }
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("win-case");
    let input = native(&dir.write("in.csv", soe_rows(2)));
    let (out, metrics) = (native(&dir.join("Out.csv")), native(&dir.join("out.csv")));
    let output = pcq(&["run", "-i", &input, "-o", &out, "--metrics", &metrics])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(2);
    let stderr = output.stderr();
    assert!(
        stderr.contains("--output and --metrics name the same file"),
        "{stderr}"
    );
    assert!(posts(&sim).is_empty(), "nothing sent");
    let names = std::fs::read_dir(dir.path()).expect("dir").count();
    assert_eq!(names, 1, "only the input is there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resume_hint_for_a_path_with_a_space_works_pasted_into_the_shell() {
    let dir = work_dir("win-hint");
    std::fs::create_dir(dir.join("my files")).expect("folder");
    let input_path = dir.join("my files/in.csv");
    let good = soe_rows(3);
    std::fs::write(&input_path, format!("{good}{},Educaton\n", cid(4))).expect("input");
    let (input, out) = (native(&input_path), native(&dir.join("my files/out.csv")));
    let output = pcq(&["run", "--sandbox", "-i", &input, "-o", &out])
        .run()
        .await;
    output.assert_code(1);
    let hint = resume_hint(&output.stderr());
    assert!(hint.contains("--resume"), "{hint}");
    std::fs::write(&input_path, format!("{good}{},StateOwnedEntity\n", cid(4))).expect("fixed");
    let (runner, bin) = binary();
    let bin_dir = PathBuf::from(&bin).parent().expect("bin dir").to_path_buf();
    // Pasted as one line into the shell, with the program's folder on its PATH; the echo runs
    // only when the pasted command exits 0.
    let line = format!("{hint} && echo pasted-exit=0");
    let pasted = match runner {
        // cmd.exe reading the line from its console input, as pasted. Not `cmd /c LINE`: Wine
        // turns its arguments into a Windows command line by quoting each again (`"` becomes
        // `\"`), which cmd.exe does not undo; and Wine's cmd.exe reads one line from a pipe.
        Some(runner) => {
            Cmd::new(runner)
                .args(&["cmd"])
                .env("WINEPATH", &native(&bin_dir))
                .stdin(format!("{line}\r\n"))
                .current_dir(dir.path())
                .run()
                .await
        }
        None => {
            let path = format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            );
            Cmd::new("sh")
                .args(&["-c", &line])
                .env("PATH", &path)
                .current_dir(dir.path())
                .run()
                .await
        }
    };
    assert!(
        pasted.stdout().contains("pasted-exit=0"),
        "the pasted hint `{hint}` did not finish the file\nstdout:\n{}\nstderr:\n{}",
        pasted.stdout(),
        pasted.stderr()
    );
    let rows = results_by_row(&dir.join("my files/out.csv"));
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{rows:?}");
}

/// The token file as the nightly run rotates it: written for its user alone (Unix mode 0600; on
/// Windows a protected DACL with one entry, for the user's SID, set on the temporary file before
/// the token goes in). Wine 8 keeps no DACL: SetNamedSecurityInfoW succeeds but only turns it into
/// Unix mode bits, and GetNamedSecurityInfoW answers from those bits (the DACL set here reads back
/// as SYSTEM, the user and Everyone), so under Wine this checks that the rotation goes through
/// the DACL call and succeeds, not the DACL itself. `login --help` promises only that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotated_token_file_is_written_for_its_user_alone() {
    let (sim, dir, _) = sim_and_rows("win-token", 1, 0).await;
    let (token_file, env) = token_file_env(&sim, &dir, native);
    let (input, out) = (native(&dir.join("in.csv")), native(&dir.join("out.csv")));
    let output = pcq(&["run", "-i", &input, "-o", &out])
        .envs(&env)
        // Wine's trace of the security calls (its advapi32), on stderr.
        .env("WINEDEBUG", "trace+advapi")
        .run()
        .await;
    output.assert_code(0);
    let rotated = std::fs::read_to_string(&token_file).expect("token file");
    assert!(sim.issued_refresh_token(rotated.trim()), "{rotated}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let temporary = names.iter().filter(|n| n.ends_with(".tmp")).count();
    assert_eq!(temporary, 0, "no temporary file left: {names:?}");
    let stderr = output.stderr();
    if under_wine() {
        // `trace:advapi:SetNamedSecurityInfoW L"...\\.refresh-token.XXXX.tmp" 1 -2147483644 ...`:
        // the temporary file that became the token file, SE_FILE_OBJECT (1), and
        // DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION (0x80000004, signed).
        assert!(
            stderr.lines().any(|l| l.contains("SetNamedSecurityInfoW")
                && l.contains("\\.refresh-token.")
                && l.contains(".tmp\" 1 -2147483644 ")),
            "{stderr}"
        );
    } else {
        assert_owner_only(&token_file);
    }
    // Promised alike on both platforms, and no Unix mode named on Windows.
    let help = pcq(&["login", "--help"]).run().await.stdout();
    assert!(
        help.contains("(replaced atomically, readable by you only)"),
        "{help}"
    );
    assert!(!help.contains("0600"), "{help}");
}
