//! Microsoft's rules as written (issue 20): `MS-RequestId` kept only for a resend of a send that
//! got no answer and new after any answer; `attempts` counting every request sent;
//! `MS-Contract-Version` and `X-Locale` on every API call; validation codes as text.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use pc_qualify::simulator::{FaultAction, ValidationEntry};

/// Runs one SOE row for customer 1 against a simulator scripted with `script`.
async fn one_row(
    script: Vec<FaultAction>,
    flags: &[&str],
) -> (SimHandle, Vec<std::collections::HashMap<String, String>>) {
    let sim = start_sim(SimConfig {
        script: script.into_iter().map(|a| fault(1, a)).collect(),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("reqid");
    dir.write("in.csv", soe_rows(1));
    let mut args = vec!["--max-backoff", "0.05", "--max-retry-after", "5"];
    args.extend_from_slice(flags);
    let output = pcq_io("run", &dir, &args).envs(&sim_env(&sim)).run().await;
    output.assert_code(0);
    let rows = results(&dir.join("out.csv"));
    (sim, rows)
}

/// The request and correlation ids of customer 1's POSTs, in order.
fn post_ids(sim: &SimHandle) -> Vec<(String, String)> {
    posts(sim)
        .iter()
        .map(|p| {
            (
                header(p, "ms-requestid").unwrap_or_default().to_string(),
                header(p, "ms-correlationid")
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn assert_answered_retry_takes_a_new_id(
    sim: &SimHandle,
    rows: &[std::collections::HashMap<String, String>],
) {
    assert_eq!(outcome_status_attempts(&rows[0]), ("created", "201", "2"));
    let ids = post_ids(sim);
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0].0, ids[1].0, "a new MS-RequestId after an answer");
    assert_ne!(ids[0].1, ids[1].1, "a new MS-CorrelationId per call");
    // The results name the deciding (last) call.
    assert_eq!(rows[0]["request_id"], ids[1].0);
    assert_eq!(rows[0]["correlation_id"], ids[1].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_then_201_sends_two_request_ids() {
    let (sim, rows) = one_row(vec![status(503, None)], &[]).await;
    assert_answered_retry_takes_a_new_id(&sim, &rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_then_201_sends_two_request_ids() {
    let (sim, rows) = one_row(vec![status(429, Some("0"))], &[]).await;
    assert_answered_retry_takes_a_new_id(&sim, &rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_then_201_resends_the_same_id_and_counts_both() {
    let (sim, rows) = one_row(vec![FaultAction::Drop], &[]).await;
    assert_eq!(outcome_status_attempts(&rows[0]), ("created", "201", "2"));
    let ids = post_ids(&sim);
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0].0, ids[1].0, "no answer: the same MS-RequestId");
    assert_ne!(ids[0].1, ids[1].1, "a new MS-CorrelationId per call");
    assert_eq!(rows[0]["request_id"], ids[1].0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_then_201_resends_the_same_id() {
    // The first send lands but its answer comes too late; the resend under the same id is
    // answered with that first answer, as an idempotent service does: created, not 409.
    let (sim, rows) = one_row(
        vec![FaultAction::SlowAnswer(Duration::from_millis(1500))],
        &["--timeout", "0.5"],
    )
    .await;
    assert_eq!(outcome_status_attempts(&rows[0]), ("created", "201", "2"));
    let ids = post_ids(&sim);
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0].0, ids[1].0, "no answer: the same MS-RequestId");
    assert_eq!(rows[0]["request_id"], ids[0].0);
    assert_eq!(
        sim.holdings(pc_qualify::domain::model::CustomerId::parse(&cid(1)).expect("id"))
            .len(),
        1
    );
}

/// Every API call carries `MS-Contract-Version: v1` and the locale.
fn assert_contract_headers(sim: &SimHandle, locale: &str, from: usize) {
    let calls = sim.api_requests();
    assert!(calls.len() > from, "no API call");
    for call in &calls[from..] {
        assert_eq!(header(call, "ms-contract-version"), Some("v1"), "{call:?}");
        assert_eq!(header(call, "x-locale"), Some(locale), "{call:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_sends_the_contract_version_and_locale() {
    let sim = start_sim(SimConfig::default()).await;
    let env = sim_env(&sim);
    let dir = work_dir("headers");
    dir.write("in.csv", soe_rows(2));
    pcq_io("run", &dir, &[])
        .envs(&env)
        .run()
        .await
        .assert_code(0);
    assert_contract_headers(&sim, "en-US", 0);
    let seen = sim.api_requests().len();
    pcq_io("reconcile", &dir, &["--force", "--locale", "fr-FR"])
        .envs(&env)
        .run()
        .await
        .assert_code(0);
    assert_contract_headers(&sim, "fr-FR", seen);
    let seen = sim.api_requests().len();
    let config = dir.write("pcq.toml", "locale = \"de-DE\"\n");
    pcq(&[
        "refresh",
        "-i",
        &dir.s("out.csv"),
        "-o",
        &dir.s("refreshed.csv"),
        "--config",
        &config.display().to_string(),
    ])
    .envs(&env)
    .run()
    .await
    .assert_code(0);
    assert_contract_headers(&sim, "de-DE", seen);
    let seen = sim.api_requests().len();
    pcq(&["export", "-o", &dir.s("export.csv"), "--rate", "0"])
        .envs(&env)
        .run()
        .await
        .assert_code(0);
    assert_contract_headers(&sim, "en-US", seen);
    // A locale a header cannot carry is refused before anything is sent.
    let seen = sim.api_requests().len();
    let output = pcq_io("run", &dir, &["--force", "--locale", "en US"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(2);
    assert_eq!(sim.api_requests().len(), seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gcc_row_with_a_text_code_is_created() {
    let sim = start_sim(SimConfig {
        validations: vec![ValidationEntry {
            validation_id: "AB-12cd".into(),
            ..ValidationEntry::default()
        }],
        ..SimConfig::default()
    })
    .await;
    let env = sim_env(&sim);
    let dir = work_dir("textcode");
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification,validation_code\n{},GovernmentCommunityCloud,AB-12cd\n",
            cid(1)
        ),
    );
    for contract in ["2022", "2021"] {
        let output = pcq_io("run", &dir, &["--force", "--api-contract", contract])
            .envs(&env)
            .run()
            .await;
        let rows = results(&dir.join("out.csv"));
        output.assert_code(0);
        assert!(
            rows[0]["outcome"] == "created" || rows[0]["outcome"] == "exists",
            "{contract}: {rows:?}"
        );
    }
    assert_eq!(results(&dir.join("out.csv")).len(), 1);
    let gcc: HashSet<_> = posts(&sim)
        .iter()
        .map(|p| (p.query.clone(), p.body.clone()))
        .collect();
    assert_eq!(gcc.len(), 2, "{gcc:?}");
    // `auto` reads the text code and uses it for a row that leaves the cell empty.
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification,validation_code\n{},GCC,\n",
            cid(2)
        ),
    );
    let output = pcq_io("run", &dir, &["--force", "--validation-code", "auto"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(0);
    assert_eq!(
        outcome_status_attempts(&results(&dir.join("out.csv"))[0]),
        ("created", "201", "1")
    );
    let last = posts(&sim).pop().expect("a post");
    assert!(last.body.contains("\"AB-12cd\""), "{last:?}");
}
