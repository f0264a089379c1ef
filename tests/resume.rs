//! --resume: after a crash (SIGKILL) every input row ends up in the results exactly once and
//! nothing is posted twice; failed and invalid rows are done again; another input is refused.

use std::collections::HashSet;

use crate::common::*;

/// Every complete line of a results file parses; returns the rows (a torn last line is allowed).
fn complete_rows(dir: &TempDir) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("out.csv")).expect("results exist");
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut reader = csv::Reader::from_reader(complete.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.expect("every complete line is a CSV record");
        assert_eq!(record.len(), 14);
        rows.push(record[0].to_string());
    }
    rows
}

pub(crate) async fn kill_and_resume(signal: Option<&str>) {
    let (sim, dir, env) = sim_and_rows("crash", 120, 40).await;
    let mut child = pcq_io("run", &dir, &["--rate", "0", "--concurrency", "4"])
        .envs(&env)
        .spawn();
    // Mid-run: some rows on file, most still to go (and, for a signal, the handlers in place).
    let results = dir.join("out.csv");
    child
        .wait_until("10 rows in the results file", || {
            std::fs::read_to_string(&results).is_ok_and(|t| t.lines().count() > 10)
        })
        .await;
    match signal {
        None => child.signal("KILL"),
        Some(sig) => {
            child.wait_for_signal_handlers().await;
            child.signal(sig);
        }
    }
    let output = child.finish().await;
    let stderr = output.stderr();
    match signal {
        None => assert_eq!(output.code(), None, "killed by a signal: {stderr}"),
        Some(_) => {
            output.assert_code(130);
            assert!(
                stderr.contains("--resume"),
                "prints the resume command: {stderr}"
            );
        }
    }
    let done_before = complete_rows(&dir);
    assert!(
        !done_before.is_empty() && done_before.len() < 120,
        "stopped mid-run ({} rows written)",
        done_before.len()
    );
    let output = pcq_io("run", &dir, &["--resume", "--rate", "0"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    let numbers: Vec<String> = rows.iter().map(|r| r["row"].clone()).collect();
    let expected: Vec<String> = (1..=120).map(|n| n.to_string()).collect();
    assert_eq!(numbers, expected, "exactly one row per input row");
    assert!(rows
        .iter()
        .all(|r| r["outcome"] == "created" || r["outcome"] == "exists"));
    // Nothing done twice: a customer posted twice is one that was in flight, re-sent with its
    // journaled request id.
    for (customer, ids) in posts_by_customer(&sim) {
        let distinct: HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), 1, "{customer} was posted with {ids:?}");
    }
    assert!(
        !dir.join("out.csv.journal").exists(),
        "a finished run removes its journal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_with_sigkill_resumes_to_one_row_per_input_row() {
    kill_and_resume(None).await;
}

/// A simulator that answers the first create for customer 2 with a 400.
async fn sim_refusing_customer_2_once() -> SimHandle {
    start_sim(SimConfig {
        script: vec![fault(2, status(400, None))],
        ..SimConfig::default()
    })
    .await
}

/// A finished run of three rows in which row 2 failed on that 400 (exit 1).
async fn a_run_with_row_2_failed(name: &str) -> (SimHandle, TempDir, Vec<(String, String)>) {
    let sim = sim_refusing_customer_2_once().await;
    let (dir, env) = a_run_of_three_rows(&sim, name, 1).await;
    (sim, dir, env)
}

/// A run of three rows against `sim` in a new folder, ended with exit `code`; the folder and the
/// settings that reach `sim`.
async fn a_run_of_three_rows(
    sim: &SimHandle,
    name: &str,
    code: i32,
) -> (TempDir, Vec<(String, String)>) {
    let dir = work_dir(name);
    dir.write("in.csv", soe_rows(3));
    let env = sim_env(sim);
    pcq_io("run", &dir, &[])
        .envs(&env)
        .run()
        .await
        .assert_code(code);
    (dir, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_redoes_failed_and_invalid_rows_only() {
    let sim = sim_refusing_customer_2_once().await;
    let dir = work_dir("fix");
    let good = soe_rows(3);
    dir.write("in.csv", format!("{good}{},Educaton\n", cid(4)));
    let env = sim_env(&sim);
    let output = pcq_io("run", &dir, &[]).envs(&env).run().await;
    output.assert_code(1);
    // The user fixes the typo and resumes.
    dir.write("in.csv", format!("{good}{},StateOwnedEntity\n", cid(4)));
    let output = pcq_io("run", &dir, &["--resume"]).envs(&env).run().await;
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{rows:?}");
    let posted = posts_by_customer(&sim);
    assert_eq!(posted[&cid(1)].len(), 1, "created rows are not sent again");
    assert_eq!(posted[&cid(2)].len(), 2, "the failed row is sent again");
    assert_ne!(
        posted[&cid(2)][0],
        posted[&cid(2)][1],
        "with a new request id"
    );
    assert_eq!(posted[&cid(4)].len(), 1);
}

/// Regression: a run interrupted after a row failed on an answer keeps its journal, whose last
/// line for that row names the answered request id; `--resume` sent the row again under that
/// id, and a service that keys idempotency on it (the simulator does) answered with the same
/// 400 without acting. An answered id is spent: the resume draws a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_sends_a_row_whose_id_was_answered_under_a_new_id() {
    let (sim, dir, env) = a_run_with_row_2_failed("answered-id").await;
    // The journal as an interrupted run leaves it: every row posted, with its last request id
    // (a finished run deletes it).
    let rows = results_by_row(&dir.join("out.csv"));
    let journal: String = rows
        .iter()
        .map(|r| {
            let (row, customer) = (&r["row"], &r["customer_id"]);
            let (qualification, id) = (&r["qualification"], &r["request_id"]);
            format!("{row},{customer},{qualification},{id}\n")
        })
        .collect();
    dir.write("out.csv.journal", journal);
    let failed = rows
        .iter()
        .find(|r| r["outcome"] == "failed")
        .expect("row 2 failed");
    assert_eq!(failed["http_status"], "400");
    let output = pcq_io("run", &dir, &["--resume"]).envs(&env).run().await;
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{rows:?}");
    let posted = posts_by_customer(&sim);
    assert_eq!(posted[&cid(2)].len(), 2, "the failed row is sent again");
    assert_eq!(posted[&cid(2)][0], failed["request_id"]);
    assert_ne!(posted[&cid(2)][1], failed["request_id"], "under a new id");
}

/// Regression (second round): the fix above knew an id was answered only from the row's
/// results row, which every resume drops for a failed row before it sends; a resume that ended
/// before the row (here a dry run) made the next one send the answered id again. The journal
/// now says so itself. Run 1 is stopped for good by an MFA refusal, so its journal stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_id_stays_spent_across_resumes_that_drop_the_failed_row() {
    let sim = start_sim(SimConfig {
        script: vec![fault(2, status(400, None))],
        // Rows 1 and 2 are answered; row 3 meets the MFA refusal that stops the run.
        mfa_after: Some(2),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("spent-id");
    dir.write("in.csv", soe_rows(3));
    let env = sim_env(&sim);
    pcq_io("run", &dir, &["--concurrency", "1"])
        .envs(&env)
        .run()
        .await
        .assert_code(2);
    sim.set_mfa_required(false);
    pcq_io("run", &dir, &["--resume", "--dry-run"])
        .envs(&env)
        .run()
        .await
        .assert_code(0);
    resume_ok(&dir, &env).await;
    assert_sent_again_under_a_new_id(&sim, 2);
    let rows = results_by_row(&dir.join("out.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{rows:?}");
}

/// Regression (second round): a row stopped while it waited out a 429's Retry-After, past
/// `--shutdown-grace`, has no results row, and the journal's last id for it was the one the
/// 429 answered; the resume sent it again (the simulator replays the 429). The id of the next
/// send is journalled as soon as the 429 is in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_stopped_in_a_retry_after_wait_resumes_under_an_unanswered_id() {
    let (sim, dir) = scripted("wait-stop", 1, vec![fault(1, status(429, Some("60")))]).await;
    let env = sim_env(&sim);
    let mut child = pcq_io("run", &dir, &["--shutdown-grace", "1"])
        .envs(&env)
        .spawn();
    child.wait_until("the 429", || posts(&sim).len() == 1).await;
    child.wait_for_signal_handlers().await;
    child.signal("INT");
    child.finish().await.assert_code(130);
    resume_ok(&dir, &env).await;
    assert_sent_again_under_a_new_id(&sim, 1);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows[0]["outcome"], "created");
}

/// Regression: a resume rewrote the results file to its settled rows before it proved it could
/// append to it. With `out.csv` read-only in a writable folder the rewrite (a rename) went
/// through, the append was refused, and the run exited 2, "nothing sent", with the failed row
/// and its request id gone. Root writes to any file, so as root the run is made as `nobody`.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_that_cannot_append_leaves_the_earlier_results_as_they_were() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_sim, dir, env) = a_run_with_row_2_failed("read-only").await;
    let out = dir.join("out.csv");
    let mode = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    // A folder anyone may write in (the lock and journal go there), a file no one may write.
    mode(dir.path(), 0o777);
    mode(&out, 0o444);
    let before = std::fs::read_to_string(&out).expect("results");
    let (input, output) = (dir.s("in.csv"), dir.s("out.csv"));
    let args = ["run", "-i", &input, "-o", &output, "--resume"];
    let id = std::process::Command::new("id").arg("-u").output();
    let root = id.is_ok_and(|id| id.stdout.trim_ascii() == b"0");
    let as_nobody = ["--reuid=65534", "--regid=65534", "--clear-groups", BIN];
    let command = match root {
        true => {
            let Some(setpriv) = outside_program(&["setpriv"], &["--version"], "util-linux") else {
                return;
            };
            Cmd::new(setpriv).args(&as_nobody).args(&args)
        }
        false => pcq(&args),
    };
    let finished = command.envs(&env).run().await;
    finished.assert_code(2);
    let after = std::fs::read_to_string(&out).ok();
    assert_eq!(after, Some(before), "{}", finished.stderr());
}

/// Regression: `run --dry-run --resume` (which opens no journal) and `reconcile --dry-run
/// --resume` deleted the journal of the interrupted real run they looked at, so the next real
/// `--resume` posted its in-flight rows under new request ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_resume_keeps_the_journal_of_an_interrupted_run() {
    let (_sim, dir, env) = a_run_with_row_2_failed("dry-journal").await;
    // An interrupted run's journal: row 2 in flight under this id.
    let journal = format!("2,{},StateOwnedEntity,{}\n", cid(2), cid(7));
    dir.write("out.csv.journal", &journal);
    for command in ["run", "reconcile"] {
        let output = pcq_io(command, &dir, &["--dry-run", "--resume"])
            .envs(&env)
            .run()
            .await;
        output.assert_code(0);
        // Kept (reconcile's dry run notes the row again, under the same id).
        let kept = std::fs::read_to_string(dir.join("out.csv.journal")).unwrap_or_default();
        assert!(!kept.is_empty(), "{command} deleted the journal");
        assert!(
            kept.lines().all(|l| l == journal.trim_end()),
            "{command}: {kept}"
        );
    }
}

/// Regression: an invalid row above a valid one for the same customer and qualification was
/// fixed as the summary advises, and `--resume` posted it again: duplicates were found anew in
/// the edited file, where the fixed row came first, while the settled row it now duplicated was
/// skipped. The settled row counts as seen first: the fixed row is its `duplicate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_row_above_its_settled_duplicate_is_not_posted_again() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("fixed-dup");
    let header = "customer_id,qualification,segment";
    dir.write(
        "in.csv",
        format!("{header}\n{0},Education,\n{0},Education,K12\n", cid(1)),
    );
    let env = sim_env(&sim);
    let output = pcq_io("run", &dir, &[]).envs(&env).run().await;
    output.assert_code(1);
    dir.write(
        "in.csv",
        format!("{header}\n{0},Education,K12\n{0},Education,K12\n", cid(1)),
    );
    let output = pcq_io("run", &dir, &["--resume"]).envs(&env).run().await;
    output.assert_code(0);
    assert_eq!(posts(&sim).len(), 1, "posted once, by the first run");
    let rows = results_by_row(&dir.join("out.csv"));
    let outcomes: Vec<_> = rows
        .iter()
        .map(|r| (&r["row"][..], &r["outcome"][..]))
        .collect();
    assert_eq!(outcomes, [("1", "duplicate"), ("2", "created")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_against_another_input_stops_with_exit_2() {
    let sim = start_sim(SimConfig::default()).await;
    let (dir, env) = a_run_of_three_rows(&sim, "mismatch", 0).await;
    let before = std::fs::read(dir.join("out.csv")).expect("results");
    dir.write(
        "in.csv",
        format!("customer_id,qualification\n{},StateOwnedEntity\n", cid(9)),
    );
    let output = pcq_io("run", &dir, &["--resume"]).envs(&env).run().await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(stderr.contains("does not belong"), "{stderr}");
    assert_eq!(std::fs::read(dir.join("out.csv")).expect("kept"), before);
    assert_eq!(posts(&sim).len(), 3, "nothing more was sent");
}
