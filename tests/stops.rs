//! Run-wide stops: what fails every row stops the run at once (exit 2, the journal kept) instead
//! of failing row after row: a token endpoint that goes down, twenty server failures in a row,
//! MFA required. Each ends with the --resume that finishes the run once the service is back.

use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_that_goes_down_mid_run_stops_it_and_resume_finishes() {
    let sim = start_sim(SimConfig {
        token_ttl: Duration::from_secs(2),
        token_outage_after: Some(1),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("token-down");
    dir.write("in.csv", soe_rows(200));
    let env = sim_env(&sim);
    let output = pcq_io("run", &dir, &["--rate", "25", "--concurrency", "2"])
        .envs(&env)
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(stderr.contains("no access token could be had"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    // Stopped at once, not row by row: what shows it is the rows (most never started, at most
    // the in-flight ones failed on the token), not a wall-clock bound on a shared machine.
    let written = row_numbers(&dir.join("out.csv"));
    assert!(written.len() < 200, "stopped early: {}", written.len());
    let token_failures = results(&dir.join("out.csv"))
        .iter()
        .filter(|r| r["error_code"] == "token")
        .count();
    assert!(
        token_failures <= 2,
        "{token_failures} rows failed one by one"
    );
    assert!(dir.join("out.csv.journal").exists(), "the journal is kept");

    sim.set_token_outage(false);
    let output = pcq_io("run", &dir, &["--resume", "--rate", "0"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(0);
    assert_rows_exactly_once(&dir.join("out.csv"), 200);
    assert_created_under_one_request_id(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_server_failures_in_a_row_trip_the_breaker() {
    let (sim, dir) = scripted(
        "breaker",
        40,
        (1..=30).map(|n| fault(n, status(503, None))).collect(),
    )
    .await;
    let env = sim_env(&sim);
    let output = pcq_io(
        "run",
        &dir,
        &["--rate", "0", "--concurrency", "1", "--max-attempts", "1"],
    )
    .envs(&env)
    .run()
    .await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(
        stderr.contains("20 calls in a row") && stderr.contains("--resume"),
        "{stderr}"
    );
    assert_eq!(
        posts(&sim).len(),
        20,
        "nothing more was sent after the 20th"
    );
    assert!(dir.join("out.csv.journal").exists(), "the journal is kept");
    // The service is back: each remaining scripted 503 is a single blip, retried.
    let output = pcq_io(
        "run",
        &dir,
        &["--resume", "--rate", "0", "--max-backoff", "0.05"],
    )
    .envs(&env)
    .run()
    .await;
    output.assert_code(0);
    assert_created_under_one_request_id(&sim);
    assert_rows_exactly_once(&dir.join("out.csv"), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_required_stops_the_run_at_once_and_resume_after_sign_in_finishes() {
    let sim = start_sim(SimConfig {
        mfa_after: Some(3),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("mfa");
    dir.write("in.csv", soe_rows(10));
    let env = sim_env(&sim);
    let output = pcq_io("run", &dir, &["--concurrency", "1", "--rate", "0"])
        .envs(&env)
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(
        stderr.contains("multi-factor authentication") && stderr.contains("pc-qualify login"),
        "{stderr}"
    );
    assert_eq!(posts(&sim).len(), 4, "no row was sent after the refusal");
    let redemptions = sim.redemptions();
    assert_eq!(redemptions, 1, "no token renewal for a missing MFA claim");
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[3]["http_status"], "401");
    assert_eq!(rows[3]["error_code"], "900421");

    // The user signs in again with MFA; the service now accepts the calls.
    sim.set_mfa_required(false);
    let output = pcq_io("run", &dir, &["--resume", "--rate", "0"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(0);
    assert_rows_exactly_once(&dir.join("out.csv"), 10);
    assert!(results(&dir.join("out.csv"))
        .iter()
        .all(|r| r["outcome"] == "created"));
    assert_created_under_one_request_id(&sim);
}
