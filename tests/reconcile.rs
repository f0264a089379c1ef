//! The nightly job: reconcile and refresh, and what it leaves for monitoring (JSON logs, the
//! Prometheus textfile).

use std::time::Duration;

use crate::common::*;
use pc_qualify::domain::model::{CustomerId, QualificationRecord};
use pc_qualify::simulator::{PreloadEntry, PreloadState};

fn holds(n: u32, qualification: &str, status: Option<&str>, reason: Option<&str>) -> PreloadEntry {
    PreloadEntry {
        customer_id: CustomerId::parse(&cid(n)).expect("id"),
        state: PreloadState::Holds(QualificationRecord {
            qualification: qualification.into(),
            vetting_status: status.map(str::to_string),
            vetting_reason: reason.map(str::to_string),
            vetting_create_date: Some("2025-01-02T03:04:05Z".into()),
        }),
    }
}

fn nightly_sim() -> SimConfig {
    SimConfig {
        preload: vec![
            holds(1, "Education", Some("Approved"), None),
            holds(
                2,
                "Education",
                Some("Denied"),
                Some("Not an Academic Domain"),
            ),
            holds(4, "StateOwnedEntity", Some("InReview"), None),
        ],
        ..SimConfig::default()
    }
}

const NIGHTLY_INPUT: &str = "customer_id,qualification,education_segment\n\
    aaaaaaaa-0000-4000-8000-000000000001,Education,K12\n\
    aaaaaaaa-0000-4000-8000-000000000002,Education,K12\n\
    aaaaaaaa-0000-4000-8000-000000000003,Education,HigherEducation\n\
    aaaaaaaa-0000-4000-8000-000000000004,StateOwnedEntity,\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_posts_only_the_absent_and_never_the_denied() {
    let sim = start_sim(nightly_sim()).await;
    let dir = work_dir("reconcile");
    dir.write("in.csv", NIGHTLY_INPUT);
    let env = sim_env(&sim);
    let output = pcq_io("reconcile", &dir, &[]).envs(&env).run().await;
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "denied rows do not fail the run: {stderr}"
    );
    assert!(
        stderr.contains("DENIED: 1"),
        "denied rows stand out: {stderr}"
    );
    let posted: Vec<String> = posts(&sim).iter().map(|p| p.path.clone()).collect();
    assert_eq!(
        posted,
        vec![format!("/v1/customers/{}/qualifications", cid(3))]
    );
    let rows = results_by_row(&dir.join("out.csv"));
    let view: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str(),
                r["http_status"].as_str(),
                r["vetting_status"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        view,
        vec![
            ("exists", "200", "Approved"),
            ("exists", "200", "Denied"),
            ("created", "201", "InReview"),
            ("exists", "200", "InReview"),
        ]
    );
    assert_eq!(rows[1]["vetting_reason"], "Not an Academic Domain");
    assert_eq!(rows[0]["vetting_create_date"], "2025-01-02T03:04:05Z");

    // The second night posts nothing.
    let output = pcq_io("reconcile", &dir, &["--force"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(0);
    assert_eq!(posts(&sim).len(), 1, "a second reconcile posts nothing");
    let rows = results_by_row(&dir.join("out.csv"));
    assert!(rows.iter().all(|r| r["outcome"] == "exists"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_denied_spends_a_vetting_request_deliberately() {
    let sim = start_sim(nightly_sim()).await;
    let dir = work_dir("retrydenied");
    dir.write("in.csv", NIGHTLY_INPUT);
    let output = pcq_io("reconcile", &dir, &["--retry-denied"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let mut posted: Vec<String> = posts(&sim).iter().map(|p| p.path.clone()).collect();
    posted.sort();
    assert_eq!(
        posted,
        vec![
            format!("/v1/customers/{}/qualifications", cid(2)),
            format!("/v1/customers/{}/qualifications", cid(3)),
        ]
    );
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows[1]["outcome"], "created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_dry_run_reads_but_never_writes() {
    let sim = start_sim(nightly_sim()).await;
    let dir = work_dir("dryreconcile");
    dir.write("in.csv", NIGHTLY_INPUT);
    let output = pcq_io("reconcile", &dir, &["--dry-run"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    assert!(posts(&sim).is_empty());
    let rows = results_by_row(&dir.join("out.csv"));
    let outcomes: Vec<&str> = rows.iter().map(|r| r["outcome"].as_str()).collect();
    assert_eq!(outcomes, vec!["exists", "exists", "planned", "exists"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_brings_vetting_up_to_date_without_posting() {
    let sim = start_sim(SimConfig {
        vetting_delay: Duration::from_millis(600),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("refresh");
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification,education_segment\n{},Education,K12\n{},StateOwnedEntity,\nbroken,Education,K12\n",
            cid(1),
            cid(2)
        ),
    );
    let env = sim_env(&sim);
    let output = pcq_io("run", &dir, &[]).envs(&env).run().await;
    output.assert_code(1);
    let before = results_by_row(&dir.join("out.csv"));
    assert_eq!(before[0]["vetting_status"], "InReview");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let posts_before = posts(&sim).len();
    let output = pcq(&[
        "refresh",
        "-i",
        &dir.s("out.csv"),
        "-o",
        &dir.s("refreshed.csv"),
    ])
    .envs(&env)
    .run()
    .await;
    output.assert_code(0);
    assert_eq!(posts(&sim).len(), posts_before, "refresh never posts");
    let after = results_by_row(&dir.join("refreshed.csv"));
    assert_eq!(after.len(), 3);
    assert_eq!(after[0]["vetting_status"], "Approved");
    assert_eq!(after[0]["outcome"], "created", "outcomes stay as they were");
    assert_eq!(after[0]["request_id"], before[0]["request_id"]);
    assert_eq!(after[2], before[2], "invalid rows are copied unchanged");

    // Not a results file: exit 2.
    let output = pcq(&["refresh", "-i", &dir.s("in.csv"), "-o", &dir.s("x.csv")])
        .envs(&env)
        .run()
        .await;
    output.assert_code(2);
    assert!(text(&output.stderr).contains("not a pc-qualify results file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_keeps_old_values_where_it_cannot_read() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("refreshfail");
    dir.write("in.csv", soe_rows(2));
    let env = sim_env(&sim);
    pcq_io("run", &dir, &[])
        .envs(&env)
        .run()
        .await
        .assert_code(0);
    // A second simulator knows nothing of these customers.
    let empty = start_sim(SimConfig::default()).await;
    let output = pcq(&["refresh", "-i", &dir.s("out.csv"), "-o", &dir.s("r.csv")])
        .envs(&sim_env(&empty))
        .run()
        .await;
    output.assert_code(1);
    let rows = results_by_row(&dir.join("r.csv"));
    assert!(rows.iter().all(|r| r["vetting_status"] == "Approved"));
    assert!(rows
        .iter()
        .all(|r| r["error_message"].starts_with("refresh:")));
}

/// The files in `dir` other than `keep`: a temporary file left behind shows up here.
fn leftovers(dir: &TempDir, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| !keep.contains(&name.as_str()))
        .collect()
}

/// Issue 22: `refresh --force` wrote over its output as it went, so an input that turned bad
/// part-way (or a stop) left yesterday's good output cut to its first lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_does_not_complete_leaves_the_earlier_output_byte_for_byte() {
    let sim = start_sim(SimConfig {
        latency: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await;
    let env = sim_env(&sim);
    let dir = work_dir("refresh-whole");
    dir.write("in.csv", soe_rows(40));
    pcq_io("run", &dir, &["--rate", "0"])
        .envs(&env)
        .run()
        .await
        .assert_code(0);
    let good = std::fs::read(dir.join("out.csv")).expect("results");
    // Yesterday's output, and an input whose last line is no results row.
    let earlier = dir.write("refreshed.csv", &good);
    let mut bad = good.clone();
    bad.extend_from_slice(b"41,garbage\n");
    dir.write("bad.csv", bad);
    let refresh = |input: &str| {
        pcq(&[
            "refresh",
            "-i",
            &dir.s(input),
            "-o",
            &dir.s("refreshed.csv"),
        ])
        .args(&["--force", "--rate", "0", "--concurrency", "1"])
        .envs(&env)
    };
    let output = refresh("bad.csv").run().await;
    output.assert_code(2);
    assert!(output.stderr().contains("line 42"), "{}", output.stderr());
    assert!(
        std::fs::read(&earlier).expect("kept") == good,
        "earlier output changed"
    );
    // The run's own timeline beside its results stays (the report reads it).
    let own = [
        "in.csv",
        "out.csv",
        "out.csv.timeline",
        "bad.csv",
        "refreshed.csv",
    ];
    assert_eq!(leftovers(&dir, &own), Vec::<String>::new());

    // Stopped half-way (50 ms a row, one at a time): the same.
    let mut child = refresh("out.csv").spawn();
    let before = sim.api_requests().len();
    child
        .wait_until("refresh reads", || sim.api_requests().len() >= before + 3)
        .await;
    child.wait_for_signal_handlers().await;
    child.signal("INT");
    let output = child.finish().await;
    output.assert_code(130);
    assert!(
        output.stderr().contains("left as it was"),
        "{}",
        output.stderr()
    );
    assert!(
        std::fs::read(&earlier).expect("kept") == good,
        "earlier output changed"
    );
    assert_eq!(leftovers(&dir, &own), Vec::<String>::new());

    // Complete: replaced whole.
    refresh("out.csv").run().await.assert_code(0);
    assert_rows_exactly_once(&earlier, 40);
    assert_eq!(leftovers(&dir, &own), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_row_ids() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("jsonlogs");
    dir.write("in.csv", soe_rows(3));
    let output = pcq_io("run", &dir, &["--log-format", "json", "-q"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    assert!(
        text(&output.stderr).trim().is_empty(),
        "-q keeps stderr quiet"
    );
    let output = pcq_io("run", &dir, &["--log-format", "json", "--force"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let stderr = text(&output.stderr);
    let mut row_events = 0;
    for line in stderr.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("each log line is JSON");
        if event.get("outcome").is_some() {
            row_events += 1;
            for field in [
                "row",
                "customer_id",
                "outcome",
                "request_id",
                "correlation_id",
            ] {
                assert!(event.get(field).is_some(), "{field} missing in {line}");
            }
        }
    }
    assert_eq!(row_events, 3, "{stderr}");
    assert!(
        stderr.contains("run finished"),
        "the summary is an event too: {stderr}"
    );
}

/// The samples of a Prometheus textfile as an independent parser of the text format reads
/// them (prometheus-parse): `name{labels}` -> value, labels sorted by name. That parser skips
/// what it cannot read instead of failing, so the file is held to more first: every line is a
/// HELP or TYPE comment or a sample, every sample's value parses, every series appears once and
/// is a gauge (the file declares them all so, see src/results/metrics.rs), and no label is lost.
fn parsed_samples(path: &str) -> std::collections::HashMap<String, f64> {
    use prometheus_parse::{LineInfo, Scrape, Value};
    let text = std::fs::read_to_string(path).expect("metrics file");
    let mut sample_lines = Vec::new();
    for line in text.lines() {
        match LineInfo::parse(line) {
            LineInfo::Sample { .. } => sample_lines.push(line),
            LineInfo::Doc { .. } | LineInfo::Type { .. } => {}
            other => panic!("not a line of the text format: {line:?} ({other:?})\n{text}"),
        }
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");
    assert_eq!(
        scrape.samples.len(),
        sample_lines.len(),
        "a sample was dropped by the parser:\n{text}"
    );
    let mut samples = std::collections::HashMap::new();
    for (sample, line) in scrape.samples.iter().zip(&sample_lines) {
        let Value::Gauge(value) = sample.value else {
            panic!("not a gauge: {line} ({:?})", sample.value);
        };
        assert_eq!(
            sample.labels.len(),
            line.matches("=\"").count(),
            "labels lost in {line}"
        );
        let key = if sample.labels.is_empty() {
            sample.metric.clone()
        } else {
            format!("{}{{{}}}", sample.metric, sample.labels)
        };
        assert!(samples.insert(key, value).is_none(), "twice: {line}");
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_file_parses_and_counts_the_night() {
    let sim = start_sim(nightly_sim()).await;
    let dir = work_dir("metrics");
    dir.write("in.csv", NIGHTLY_INPUT);
    let metrics = dir.s("pc_qualify.prom");
    let output = pcq_io("reconcile", &dir, &["--metrics", &metrics])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let samples = parsed_samples(&metrics);
    let get = |key: &str| samples.get(key).copied().unwrap_or(-1.0);
    assert_eq!(
        get(r#"pc_qualify_rows{command="reconcile",outcome="created"}"#),
        1.0
    );
    assert_eq!(
        get(r#"pc_qualify_rows{command="reconcile",outcome="exists"}"#),
        3.0
    );
    assert_eq!(
        get(r#"pc_qualify_rows{command="reconcile",outcome="failed"}"#),
        0.0
    );
    assert_eq!(
        get(r#"pc_qualify_rows_by_vetting_status{command="reconcile",vetting_status="Denied"}"#),
        1.0
    );
    assert_eq!(
        get(r#"pc_qualify_http_requests{command="reconcile",status="200"}"#),
        4.0
    );
    assert!(get(r#"pc_qualify_last_success_timestamp_seconds{command="reconcile"}"#) > 1.7e9);
    assert!(get(r#"pc_qualify_run_duration_seconds{command="reconcile"}"#) >= 0.0);
}

/// Issue 24: `refresh --sandbox` of a sandbox run's results reads every customer the run created
/// as gone (each `--sandbox` starts an empty simulator); the summary says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_on_the_sandbox_says_a_sandbox_starts_empty() {
    let dir = work_dir("sandbox-refresh");
    let (run_out, refreshed) = (dir.s("run.csv"), dir.s("refreshed.csv"));
    pcq(&[
        "run",
        "--sandbox",
        "--rate",
        "0",
        "-i",
        "samples/customers.csv",
        "-o",
        &run_out,
    ])
    .run()
    .await
    .assert_code(1);
    let output = pcq(&[
        "refresh",
        "--sandbox",
        "--rate",
        "0",
        "-i",
        &run_out,
        "-o",
        &refreshed,
    ])
    .run()
    .await;
    output.assert_code(1);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("starts a new, empty simulator"), "{stderr}");
}
