//! Nothing lost, nothing done twice: throttling, faults, crashes, resume and bad input.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::common::*;
use pc_qualify::domain::model::CustomerId;
use pc_qualify::simulator::{FaultAction, PreloadEntry, PreloadState};

/// A results row's outcome and attempts.
fn outcome_attempts(row: &HashMap<String, String>) -> (&str, &str) {
    (row["outcome"].as_str(), row["attempts"].as_str())
}

/// A results row's outcome, HTTP status and attempts.
fn outcome_status_attempts(row: &HashMap<String, String>) -> (&str, &str, &str) {
    (
        row["outcome"].as_str(),
        row["http_status"].as_str(),
        row["attempts"].as_str(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_every_worker_for_its_retry_after() {
    let sim = start_sim(SimConfig {
        script: vec![fault(3, status(429, Some("2")))],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("pause");
    dir.write("in.csv", soe_rows(16));
    let output = pcq_io("run", &dir, &["--rate", "0", "--concurrency", "4"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(0);
    let requests = sim.api_requests();
    let throttled = requests
        .iter()
        .find(|r| r.status == 429)
        .expect("the scripted 429 was served");
    let t0 = throttled.at_ms;
    let during: Vec<u64> = requests
        .iter()
        .map(|r| r.at_ms)
        .filter(|&t| t > t0 + 150 && t < t0 + 1_850)
        .collect();
    assert!(
        during.is_empty(),
        "requests reached the server during the pause: {during:?} (429 at {t0})"
    );
    let rows = results_by_row(&dir.join("out.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "created"));
    assert_eq!(rows[2]["attempts"], "2");
    assert!(stderr.contains("throttled (429) 1"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_renewed_once_and_the_row_resent() {
    // Row 1 is refused once (a token revoked early), row 2 every time (a user without the rights).
    let sim = start_sim(SimConfig {
        script: vec![
            fault(1, status(401, None)),
            fault(2, status(401, None)),
            fault(2, status(401, None)),
            fault(2, status(401, None)),
        ],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("refused");
    dir.write("in.csv", soe_rows(3));
    let output = pcq_io("run", &dir, &["--concurrency", "1"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    let stderr = text(&output.stderr);
    // A refusal that a fresh token does not cure would fail every row: the run stops (issue 10.3).
    output.assert_code(2);
    assert!(stderr.contains("pc-qualify login"), "{stderr}");
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(outcome_attempts(&rows[0]), ("created", "2"));
    assert_eq!(
        outcome_status_attempts(&rows[1]),
        ("failed", "401", "2"),
        "a second refusal of a renewed token is final"
    );
    assert_eq!(rows.len(), 2, "row 3 is not sent after the stop");
    let bearer = |n: u32| -> Vec<String> {
        posts(&sim)
            .iter()
            .filter(|p| p.path.contains(&cid(n)))
            .map(|p| p.token_fingerprint.clone().unwrap_or_default())
            .collect()
    };
    let row1 = bearer(1);
    assert_eq!(row1.len(), 2);
    assert_ne!(row1[0], row1[1], "the resend carries a renewed token");
    assert_eq!(bearer(2).len(), 2, "row 2 is not resent a second time");
    // The first token, and one renewal per refusal.
    assert_eq!(sim.redemptions(), 3);
    assert!(
        !stderr.contains("sim-at-") && !stderr.contains("sim-rt-"),
        "no token in the log: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_attempt_that_landed_is_reported_as_exists() {
    let sim = start_sim(SimConfig {
        script: vec![fault(
            1,
            FaultAction::SlowAnswer(Duration::from_millis(1500)),
        )],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("landed");
    dir.write("in.csv", soe_rows(1));
    let output = pcq_io("run", &dir, &["--timeout", "0.5"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let rows = results(&dir.join("out.csv"));
    assert_eq!(rows[0]["outcome"], "exists");
    assert_eq!(rows[0]["http_status"], "409");
    assert_eq!(rows[0]["attempts"], "2");
    assert_eq!(rows[0]["vetting_status"], "Approved");
    let ids = &posts_by_customer(&sim)[&cid(1)];
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids[0], ids[1],
        "the retry carries the first attempt's request id"
    );
    assert_eq!(rows[0]["request_id"], ids[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_client_errors_are_not() {
    let sim = start_sim(SimConfig {
        script: vec![
            fault(1, status(500, None)),
            fault(1, status(502, None)),
            fault(1, status(504, None)),
            fault(1, status(408, None)),
            fault(2, status(404, None)),
            fault(3, status(403, None)),
            fault(4, FaultAction::Drop),
        ],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("matrix");
    dir.write("in.csv", soe_rows(4));
    let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
    output.assert_code(1);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(outcome_attempts(&rows[0]), ("created", "5"));
    assert_eq!(outcome_status_attempts(&rows[1]), ("failed", "404", "1"));
    assert_eq!(outcome_status_attempts(&rows[2]), ("failed", "403", "1"));
    // A connection closed without a byte of answer is resent at once, not counted (issue 11).
    assert_eq!(outcome_attempts(&rows[3]), ("created", "1"));
    assert_eq!(
        posts(&sim)
            .iter()
            .filter(|p| p.path.contains(&cid(4)))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_past_the_timeout_exhaust_the_attempts() {
    let sim = start_sim(SimConfig {
        script: (0..3)
            .map(|_| fault(1, FaultAction::Delay(Duration::from_millis(1200))))
            .collect(),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("timeouts");
    dir.write("in.csv", soe_rows(1));
    let output = pcq_io("run", &dir, &["--timeout", "0.3", "--max-attempts", "2"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(1);
    let rows = results(&dir.join("out.csv"));
    assert_eq!(rows[0]["outcome"], "failed");
    assert_eq!(rows[0]["http_status"], "");
    assert_eq!(rows[0]["attempts"], "2");
    assert_eq!(rows[0]["error_code"], "transport");
    assert!(rows[0]["error_message"].contains("timed out"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_lose_no_row() {
    let sim = start_sim(SimConfig {
        fault_rate: 0.3,
        seed: 7,
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("random");
    dir.write("in.csv", soe_rows(40));
    let output = pcq_io(
        "run",
        &dir,
        &[
            "--rate",
            "0",
            "--concurrency",
            "8",
            "--max-attempts",
            "12",
            "--max-backoff",
            "0.05",
        ],
    )
    .envs(&sim_env(&sim))
    .run()
    .await;
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows.len(), 40);
    assert!(rows
        .iter()
        .all(|r| r["outcome"] == "created" || r["outcome"] == "exists"));
    for n in 1..=40 {
        let id = CustomerId::parse(&cid(n)).expect("id");
        assert_eq!(sim.holdings(id).len(), 1, "customer {n} holds it once");
    }
}

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

async fn kill_and_resume(signal: Option<&str>) {
    let sim = start_sim(SimConfig {
        latency: Duration::from_millis(40),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("crash");
    dir.write("in.csv", soe_rows(120));
    let env = sim_env(&sim);
    let mut child = pcq_io("run", &dir, &["--rate", "0", "--concurrency", "4"])
        .envs(&env)
        .spawn();
    // Mid-run: some rows on file, most still to go (and, for a signal, the handlers in place).
    let results = dir.join("out.csv");
    wait_until("10 rows in the results file", || {
        std::fs::read_to_string(&results).is_ok_and(|t| t.lines().count() > 10)
    })
    .await;
    match signal {
        None => child.signal("KILL"),
        Some(sig) => {
            #[cfg(target_os = "linux")]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_exits_130_and_resumes() {
    kill_and_resume(Some("INT")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_redoes_failed_and_invalid_rows_only() {
    let sim = start_sim(SimConfig {
        script: vec![fault(2, status(400, None))],
        ..SimConfig::default()
    })
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_against_another_input_stops_with_exit_2() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("mismatch");
    dir.write("in.csv", soe_rows(3));
    let env = sim_env(&sim);
    pcq_io("run", &dir, &[])
        .envs(&env)
        .run()
        .await
        .assert_code(0);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_at_the_most_verbose_logging() {
    let sim = start_sim(SimConfig {
        script: vec![fault(1, status(503, None))],
        preload: vec![PreloadEntry {
            customer_id: CustomerId::parse(&cid(2)).expect("id"),
            state: PreloadState::NoRelationship,
        }],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("secrets");
    dir.write("in.csv", soe_rows(3));
    let output = pcq_io("run", &dir, &["-vvv"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(1);
    // Every token the simulator issues starts with `sim-at-` (access) or `sim-rt-` (refresh), so
    // the prefixes stand for all of them (the request log keeps only their fingerprints).
    assert!(sim
        .api_requests()
        .iter()
        .all(|r| r.token_fingerprint.is_some()));
    let secrets = vec![
        simulator::SANDBOX_CLIENT_SECRET.to_string(),
        simulator::SANDBOX_REFRESH_TOKEN.to_string(),
        "sim-at-".to_string(),
        "sim-rt-".to_string(),
    ];
    let everything = format!(
        "{}{}{}",
        text(&output.stderr),
        text(&output.stdout),
        std::fs::read_to_string(dir.join("out.csv")).expect("results")
    );
    assert!(everything.len() > 2_000, "trace logging produced output");
    for secret in &secrets {
        assert!(!everything.contains(secret.as_str()), "a secret leaked");
    }
    let help = pcq(&["run", "--help"]).envs(&sim_env(&sim)).output();
    for secret in &secrets {
        assert!(!text(&help.stdout).contains(secret.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_input_of_every_kind_is_reported_not_lost() {
    let sim = start_sim(SimConfig::default()).await;
    let env = sim_env(&sim);
    let dir = work_dir("garbage");
    let big = "x".repeat(1 << 20);
    let mut input = b"customer_id,qualification,notes\n".to_vec();
    input.extend_from_slice(format!("{},StateOwnedEntity,\"{big}\"\n", cid(1)).as_bytes());
    input.extend_from_slice(
        format!("{},StateOwnedEntity,café \u{fffd}\u{feff}\n", cid(2)).as_bytes(),
    );
    // (Bytes that are not UTF-8 stop the file before anything is sent: tests/formats.rs.)
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
