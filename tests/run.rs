//! `pc-qualify run`: the pipeline end to end against the simulator.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use pc_qualify::domain::model::{CustomerId, QualificationRecord};
use pc_qualify::simulator::{FaultAction, PreloadEntry, PreloadState, ScriptedFault};

fn customer(text: &str) -> CustomerId {
    CustomerId::parse(text).expect("test customer id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_sample_run_gives_one_row_per_input_row() {
    let dir = work_dir("sample");
    let out = dir.s("results.csv");
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/customers.csv");
    let output = pcq(&["run", "--sandbox", "--input", sample, "--output", &out])
        .run()
        .await;
    let stderr = text(&output.stderr);
    // The sample holds invalid rows on purpose, so the run ends with 1.
    output.assert_code(1);
    assert!(
        stderr.contains(&out),
        "summary names the results file: {stderr}"
    );
    let rows = results_by_row(&dir.join("results.csv"));
    let input_rows = csv::Reader::from_path(sample)
        .expect("sample")
        .records()
        .count();
    assert_eq!(rows.len(), input_rows);
    let numbers: Vec<u64> = rows.iter().map(|r| r["row"].parse().expect("n")).collect();
    assert_eq!(numbers, (1..=input_rows as u64).collect::<Vec<_>>());
    let outcome_of = |id: &str| {
        rows.iter()
            .find(|r| r["customer_id"] == id)
            .map(|r| r["outcome"].clone())
            .unwrap_or_default()
    };
    assert_eq!(outcome_of("11111111-1111-4111-8111-000000000001"), "exists");
    assert_eq!(outcome_of("11111111-1111-4111-8111-000000000006"), "exists");
    assert_eq!(outcome_of("11111111-1111-4111-8111-000000000007"), "failed");
    assert_eq!(outcome_of("11111111-1111-4111-8111-000000000008"), "failed");
    assert_eq!(outcome_of("not-a-guid"), "invalid");
    let count = |o: &str| rows.iter().filter(|r| r["outcome"] == o).count();
    assert_eq!(count("duplicate"), 1);
    assert_eq!(count("invalid"), 5);
    assert!(count("created") >= 25, "{rows:?}");
    let exists = rows
        .iter()
        .find(|r| r["customer_id"] == "11111111-1111-4111-8111-000000000001")
        .expect("row");
    assert_eq!(exists["http_status"], "409");
    assert_eq!(exists["vetting_status"], "Approved");
    let no_rel = rows
        .iter()
        .find(|r| r["customer_id"] == "11111111-1111-4111-8111-000000000008")
        .expect("row");
    assert_eq!(no_rel["http_status"], "403");
    assert_eq!(no_rel["error_code"], "20002");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_2022_sends_the_documented_requests() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("c2022");
    let input = format!(
        "Customer-Tenant-ID,Qualification,Segment,Website,Code\n\
         {},education,k-12,school.example.edu,\n\
         {},GCC,,,482913\n\
         {},StateOwnedEntity,,,\n",
        cid(1).to_uppercase(),
        cid(2),
        cid(3)
    );
    dir.write("in.csv", input);
    let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
    output.assert_code(0);
    let mut posts = posts(&sim);
    posts.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(posts.len(), 3);
    let bodies: Vec<serde_json::Value> = posts
        .iter()
        .map(|p| serde_json::from_str(&p.body).expect("json body"))
        .collect();
    assert_eq!(
        posts[0].path,
        format!("/v1/customers/{}/qualifications", cid(1))
    );
    assert_eq!(
        bodies[0],
        serde_json::json!({"qualification":"Education","educationSegment":"K12","website":"school.example.edu"})
    );
    assert_eq!(
        bodies[1],
        serde_json::json!({"qualification":"GovernmentCommunityCloud","validationCode":"482913"})
    );
    assert_eq!(
        bodies[2],
        serde_json::json!({"qualification":"StateOwnedEntity"})
    );
    let mut request_ids = HashSet::new();
    for post in &posts {
        assert_eq!(post.query, None, "no query string under 2022");
        assert_eq!(header(post, "authorization"), Some("Bearer <redacted>"));
        assert!(post.token_fingerprint.is_some(), "a token was sent");
        assert_eq!(header(post, "accept"), Some("application/json"));
        assert_eq!(header(post, "content-type"), Some("application/json"));
        let hosts: Vec<&str> = post
            .headers
            .iter()
            .filter(|(k, _)| k == "host")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            hosts,
            [sim.addr.to_string()],
            "one Host header, the authority's"
        );
        assert_eq!(
            header(post, "ms-partnercenter-application"),
            Some(concat!("pc-qualify/", env!("CARGO_PKG_VERSION")))
        );
        let rid = header(post, "ms-requestid").expect("request id");
        let cor = header(post, "ms-correlationid").expect("correlation id");
        assert!(uuid::Uuid::parse_str(rid).is_ok() && uuid::Uuid::parse_str(cor).is_ok());
        request_ids.insert(rid.to_string());
    }
    assert_eq!(request_ids.len(), 3, "one request id per row");
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows[0]["customer_id"], cid(1));
    assert_eq!(rows[0]["outcome"], "created");
    assert_eq!(rows[0]["http_status"], "201");
    assert_eq!(rows[0]["vetting_status"], "InReview");
    assert!(!rows[0]["vetting_create_date"].is_empty());
    assert_eq!(rows[1]["qualification"], "GovernmentCommunityCloud");
    assert_eq!(rows[0]["attempts"], "1");
    // The results name the ids that went over the wire.
    for row in &rows {
        assert!(request_ids.contains(&row["request_id"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_2021_sends_one_key_and_the_code_as_query() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("c2021");
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification,validation_code\n{},Education,\n{},GovernmentCommunityCloud,482913\n",
            cid(1),
            cid(2)
        ),
    );
    let output = pcq_io("run", &dir, &["--api-contract", "2021"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let mut posts = posts(&sim);
    posts.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(posts[0].body, r#"{"Qualification":"Education"}"#);
    assert_eq!(posts[0].query, None);
    assert_eq!(
        posts[1].body,
        r#"{"Qualification":"GovernmentCommunityCloud"}"#
    );
    assert_eq!(posts[1].query.as_deref(), Some("code=482913"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_qualification_is_exists_with_vetting_read_back() {
    let config = SimConfig {
        preload: vec![PreloadEntry {
            customer_id: customer(&cid(1)),
            state: PreloadState::Holds(QualificationRecord {
                qualification: "Education".into(),
                vetting_status: Some("Approved".into()),
                vetting_reason: None,
                vetting_create_date: Some("2024-02-01T10:00:00Z".into()),
            }),
        }],
        ..SimConfig::default()
    };
    let sim = start_sim(config).await;
    let dir = work_dir("exists");
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification,education_segment\n{},Education,K12\n",
            cid(1)
        ),
    );
    let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
    output.assert_code(0);
    let rows = results(&dir.join("out.csv"));
    assert_eq!(rows[0]["outcome"], "exists");
    assert_eq!(rows[0]["http_status"], "409");
    assert_eq!(rows[0]["vetting_status"], "Approved");
    assert_eq!(rows[0]["vetting_create_date"], "2024-02-01T10:00:00Z");
    let gets = sim
        .api_requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(gets, 1, "the vetting status is read back once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_with_one_request_id() {
    let config = SimConfig {
        script: vec![
            ScriptedFault {
                customer_id: customer(&cid(1)),
                action: FaultAction::Status {
                    status: 503,
                    retry_after: None,
                },
            },
            ScriptedFault {
                customer_id: customer(&cid(1)),
                action: FaultAction::Drop,
            },
            ScriptedFault {
                customer_id: customer(&cid(2)),
                action: FaultAction::Status {
                    status: 400,
                    retry_after: None,
                },
            },
        ],
        ..SimConfig::default()
    };
    let sim = start_sim(config).await;
    let dir = work_dir("retry");
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification\n{},StateOwnedEntity\n{},StateOwnedEntity\n",
            cid(1),
            cid(2)
        ),
    );
    let output = pcq_io("run", &dir, &[]).envs(&sim_env(&sim)).run().await;
    output.assert_code(1);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows[0]["outcome"], "created");
    // 503, then the dropped connection (no byte of answer) resent at once without counting an
    // attempt (issue 11: the keep-alive race), so two attempts for three sends.
    assert_eq!(rows[0]["attempts"], "2");
    assert_eq!(rows[1]["outcome"], "failed");
    assert_eq!(rows[1]["http_status"], "400");
    assert_eq!(rows[1]["attempts"], "1", "a 400 is not retried");
    assert!(!rows[1]["error_message"].is_empty());
    let first: Vec<_> = posts(&sim)
        .into_iter()
        .filter(|p| p.path.contains(&cid(1)))
        .collect();
    assert_eq!(first.len(), 3);
    let rids: HashSet<_> = first.iter().map(|p| header(p, "ms-requestid")).collect();
    let cors: HashSet<_> = first
        .iter()
        .map(|p| header(p, "ms-correlationid"))
        .collect();
    assert_eq!(rids.len(), 1, "retries keep the request id");
    assert_eq!(cors.len(), 3, "every send has its own correlation id");
    assert_eq!(
        header(&first[2], "ms-correlationid"),
        Some(rows[0]["correlation_id"].as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_attempts_bounds_the_retries() {
    let config = SimConfig {
        script: (0..5)
            .map(|_| ScriptedFault {
                customer_id: customer(&cid(1)),
                action: FaultAction::Status {
                    status: 502,
                    retry_after: Some("0".into()),
                },
            })
            .collect(),
        ..SimConfig::default()
    };
    let sim = start_sim(config).await;
    let dir = work_dir("maxattempts");
    dir.write(
        "in.csv",
        format!("customer_id,qualification\n{},StateOwnedEntity\n", cid(1)),
    );
    let output = pcq_io("run", &dir, &["--max-attempts", "3"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(1);
    let rows = results(&dir.join("out.csv"));
    assert_eq!(rows[0]["outcome"], "failed");
    assert_eq!(rows[0]["http_status"], "502");
    assert_eq!(rows[0]["attempts"], "3");
    assert_eq!(posts(&sim).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_cap_holds_across_workers() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("rate");
    dir.write("in.csv", soe_rows(24));
    let output = pcq_io("run", &dir, &["--rate", "8", "--concurrency", "8"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let times: Vec<u64> = sim.api_requests().iter().map(|r| r.at_ms).collect();
    assert_eq!(times.len(), 24);
    // 24 requests at 8/s with a burst of 1: the last leaves no sooner than 23/8 s after the first.
    let span = times.iter().max().unwrap_or(&0) - times.iter().min().unwrap_or(&0);
    assert!(span >= 2_700, "24 requests spread over only {span} ms");
    // No one-second window holds more than rate + burst (with 50 ms of scheduling slack).
    for &start in &times {
        let in_window = times
            .iter()
            .filter(|&&t| t >= start && t < start + 950)
            .count();
        assert!(in_window <= 9, "{in_window} requests within a second");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_expiring_mid_run_is_renewed_without_failed_rows() {
    let config = SimConfig {
        token_ttl: Duration::from_secs(1),
        latency: Duration::from_millis(100),
        ..SimConfig::default()
    };
    let sim = start_sim(config).await;
    let dir = work_dir("expiry");
    dir.write("in.csv", soe_rows(30));
    let output = pcq_io("run", &dir, &["--rate", "10", "--concurrency", "2"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let rows = results(&dir.join("out.csv"));
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|r| r["outcome"] == "created"), "{rows:?}");
    assert!(
        sim.redemptions() >= 2,
        "the token was renewed during the run ({} redemptions)",
        sim.redemptions()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_exits_2_names_the_cause_and_posts_nothing() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("badsecret");
    dir.write(
        "in.csv",
        format!("customer_id,qualification\n{},StateOwnedEntity\n", cid(1)),
    );
    let mut env = sim_env(&sim);
    let secret = "wrong-secret-d41d8cd98f00b204";
    for (k, v) in env.iter_mut() {
        if k == "PC_CLIENT_SECRET" {
            *v = secret.into();
        }
    }
    let output = pcq_io("run", &dir, &["-vv"]).envs(&env).run().await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(stderr.contains("invalid_client"), "{stderr}");
    assert!(stderr.contains("AADSTS7000215"), "{stderr}");
    assert!(!stderr.contains(secret) && !text(&output.stdout).contains(secret));
    assert!(!stderr.contains(simulator::SANDBOX_REFRESH_TOKEN));
    assert!(posts(&sim).is_empty());
    assert!(!dir.join("out.csv").exists(), "no results file is created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_access_token_is_used_as_is() {
    let sim = start_sim(SimConfig::default()).await;
    // Redeem one token the way an operator would have, then hand it over.
    let form = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}&resource=https%3A%2F%2Fapi.partnercenter.microsoft.com&scope=openid",
        simulator::SANDBOX_REFRESH_TOKEN,
        simulator::SANDBOX_CLIENT_ID,
        simulator::SANDBOX_CLIENT_SECRET
    );
    let answer: serde_json::Value = pc_qualify::partner_center::client::test_http_client()
        .post(format!(
            "{}/{}/oauth2/token",
            sim.base_url(),
            simulator::SANDBOX_TENANT
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("token call")
        .json()
        .await
        .expect("token json");
    let token = answer["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let dir = work_dir("static");
    dir.write(
        "in.csv",
        format!("customer_id,qualification\n{},StateOwnedEntity\n", cid(1)),
    );
    let env = vec![
        ("PC_BASE_URL".to_string(), sim.base_url()),
        ("PC_ACCESS_TOKEN".to_string(), token.clone()),
    ];
    let output = pcq_io("run", &dir, &[]).envs(&env).run().await;
    output.assert_code(0);
    let posts = posts(&sim);
    assert_eq!(
        header(&posts[0], "authorization"),
        Some("Bearer <redacted>")
    );
    assert_eq!(
        posts[0].token_fingerprint,
        Some(simulator::token_fingerprint(&token)),
        "the given access token is sent as it is"
    );
    assert_eq!(sim.redemptions(), 1, "the tool redeemed nothing itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_is_reached_directly_whatever_the_proxy_settings() {
    let sim = start_sim(SimConfig::default()).await;
    // A "proxy" that takes connections into its backlog but never answers: a request sent
    // through it would hang until the timeout, and would leave a connection behind.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
    let dir = work_dir("proxy");
    dir.write("in.csv", soe_rows(3));
    let mut env = sim_env(&sim);
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
    ] {
        env.push((name.to_string(), proxy_url.clone()));
    }
    let output = pcq_io("run", &dir, &["--timeout", "2", "--max-attempts", "1"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(0);
    assert_eq!(posts(&sim).len(), 3);
    proxy.set_nonblocking(true).expect("nonblocking");
    assert!(
        matches!(proxy.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing connected to the proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_before_anything_is_sent() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("usage");
    dir.write(
        "in.csv",
        format!("customer_id,qualification\n{},StateOwnedEntity\n", cid(1)),
    );
    dir.write(
        "nocol.csv",
        format!("customer_id,segment\n{},K12\n", cid(1)),
    );
    dir.write("existing.csv", "keep me\n");
    let env = sim_env(&sim);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "-i".into(),
                dir.s("nocol.csv"),
                "-o".into(),
                dir.s("o1.csv"),
            ],
            "qualification",
        ),
        (
            vec![
                "-i".into(),
                dir.s("missing.csv"),
                "-o".into(),
                dir.s("o2.csv"),
            ],
            "missing.csv",
        ),
        (
            vec![
                "-i".into(),
                dir.s("in.csv"),
                "-o".into(),
                dir.s("existing.csv"),
            ],
            "already exists",
        ),
        (
            vec![
                "-i".into(),
                dir.s("in.csv"),
                "-o".into(),
                dir.s("no/such/dir/o.csv"),
            ],
            "directory",
        ),
        (
            vec![
                "--rate".into(),
                "-1".into(),
                "-i".into(),
                dir.s("in.csv"),
                "-o".into(),
                dir.s("o3.csv"),
            ],
            "--rate",
        ),
        (
            vec![
                "--concurrency".into(),
                "0".into(),
                "-i".into(),
                dir.s("in.csv"),
                "-o".into(),
                dir.s("o4.csv"),
            ],
            "--concurrency",
        ),
        (
            vec![
                "--base-url".into(),
                "http://partner.example.com".into(),
                "-i".into(),
                dir.s("in.csv"),
                "-o".into(),
                dir.s("o5.csv"),
            ],
            "loopback",
        ),
        (
            vec![
                "--api-contract".into(),
                "2023".into(),
                "-i".into(),
                dir.s("in.csv"),
                "-o".into(),
                dir.s("o6.csv"),
            ],
            "2023",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["run".to_string()];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let output = pcq(&refs).envs(&env).run().await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{all:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{all:?} should mention {needle}: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("existing.csv")).expect("kept"),
        "keep me\n"
    );
    assert!(posts(&sim).is_empty());
    // No credentials at all.
    let output = pcq(&["run", "-i", &dir.s("in.csv"), "-o", &dir.s("o7.csv")])
        .run()
        .await;
    output.assert_code(2);
    assert!(text(&output.stderr).contains("PC_ACCESS_TOKEN"));
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
