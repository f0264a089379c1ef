//! No credential leaks: not at the most verbose logging, not in help, not in the simulator's
//! served request log.

use crate::common::*;
use pc_qualify::domain::model::CustomerId;
use pc_qualify::simulator::{PreloadEntry, PreloadState};

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
async fn the_served_request_log_holds_no_token() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("log-redacted");
    dir.write("in.csv", soe_rows(2));
    let output = pcq_io("run", &dir, &["--rate", "0"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    pc_qualify::partner_center::client::install_tls_provider();
    let served = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("{}/_sim/requests", sim.base_url()))
        .send()
        .await
        .expect("log")
        .text()
        .await
        .expect("text");
    for secret in [
        "sim-at-",
        "sim-rt-",
        simulator::SANDBOX_REFRESH_TOKEN,
        simulator::SANDBOX_CLIENT_SECRET,
    ] {
        assert!(!served.contains(secret), "{secret} in {served}");
    }
    let api = sim.api_requests();
    assert_eq!(api.len(), 2);
    for request in &api {
        assert_eq!(header(request, "authorization"), Some("Bearer <redacted>"));
    }
    // One token for the run: the same fingerprint on both calls.
    assert!(api[0].token_fingerprint.is_some());
    assert_eq!(api[0].token_fingerprint, api[1].token_fingerprint);
}
