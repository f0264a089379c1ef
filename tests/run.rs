//! `pc-qualify run` end to end: the sandbox sample, usage errors before anything is sent, and the
//! sandbox reached directly whatever the proxy settings.

use crate::common::*;

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
