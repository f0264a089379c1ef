//! Nothing lost, round two (issue 11, and issue 10 items 3 and 6): panics, one writer per results
//! file, cut answers, unconfirmed successes, unwritable outputs, outages and MFA stop the run,
//! Retry-After obeyed past --max-backoff but not past --max-retry-after, signals, control characters.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use pc_qualify::domain::model::CustomerId;
use pc_qualify::simulator::FaultAction;

/// No customer was posted under two different request ids.
fn assert_one_request_id_per_customer(sim: &SimHandle) {
    for (customer, ids) in posts_by_customer(sim) {
        let distinct: HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), 1, "{customer} was posted with {ids:?}");
    }
}

/// The row numbers of a results file, in file order.
fn row_numbers(path: &Path) -> Vec<u64> {
    results(path)
        .iter()
        .map(|r| r["row"].parse().expect("row number"))
        .collect()
}

fn assert_rows_exactly_once(path: &Path, n: u64) {
    let mut rows = row_numbers(path);
    rows.sort_unstable();
    assert_eq!(
        rows,
        (1..=n).collect::<Vec<_>>(),
        "one results row per input row"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. No row is lost to a panic; durations from the network are checked.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_of_any_size_never_loses_a_row() {
    let sim = start_sim(SimConfig {
        script: vec![
            fault(1, status(429, Some("1e30"))),
            fault(2, status(503, Some("99999999999999999999"))),
            fault(3, status(503, Some("soon"))),
            fault(4, status(429, Some("-5"))),
        ],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("huge-retry-after");
    dir.write("in.csv", soe_rows(5));
    let output = pcq_io("run", &dir, &["--rate", "0", "--max-backoff", "0.05"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(1);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows.len(), 5, "{rows:?}");
    for (i, figure) in [(0, "1e30"), (1, "99999999999999999999")] {
        assert_eq!(rows[i]["outcome"], "failed", "{:?}", rows[i]);
        assert_eq!(rows[i]["attempts"], "1");
        let message = &rows[i]["error_message"];
        assert!(
            message.contains(figure) && message.contains("--max-retry-after"),
            "{message}"
        );
    }
    // Malformed or negative values fall back to the tool's own backoff.
    for i in [2, 3, 4] {
        assert_eq!(rows[i]["outcome"], "created", "{:?}", rows[i]);
    }
    assert_eq!(rows[2]["attempts"], "2");
    assert_eq!(rows[3]["attempts"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_token_lifetime_is_clamped_not_a_crash() {
    let sim = start_sim(SimConfig {
        token_expires_in: Some(u64::MAX),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("expires-in");
    dir.write("in.csv", soe_rows(3));
    let output = pcq_io("run", &dir, &["--rate", "0"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    assert_rows_exactly_once(&dir.join("out.csv"), 3);
}

// ---------------------------------------------------------------------------------------------
// 2. One writer per results file.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_a_locked_results_file_gets_exit_2_naming_the_holder() {
    let sim = start_sim(SimConfig {
        latency: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("lock");
    dir.write("in.csv", soe_rows(30));
    let env = sim_env(&sim);
    let (input, out) = (dir.s("in.csv"), dir.s("out.csv"));
    std::fs::write(
        dir.join("earlier.csv"),
        format!(
            "{RESULTS_HEADER}\n1,{},StateOwnedEntity,invalid,,,,,0,,,x,y,0\n",
            cid(1)
        ),
    )
    .expect("an earlier results file");
    let first = pcq_io("run", &dir, &["--rate", "0", "--concurrency", "1"])
        .envs(&env)
        .spawn();
    let lock = dir.join("out.csv.lock");
    wait_until("the first run's lock", || {
        lock.exists() && dir.join("out.csv").exists()
    })
    .await;
    let pid = first.pid().to_string();
    let attempts: [&[&str]; 3] = [
        &["run", "-i", &input, "-o", &out, "--force"],
        &["run", "-i", &input, "-o", &out, "--resume"],
        &["reconcile", "-i", &input, "-o", &out, "--force"],
    ];
    for args in attempts {
        let output = pcq(args).envs(&env).run().await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("process {pid}")) && stderr.contains("out.csv"),
            "{args:?}: {stderr}"
        );
    }
    // `refresh` writing onto the same file is refused the same way.
    let output = pcq(&[
        "refresh",
        "-i",
        &dir.s("earlier.csv"),
        "-o",
        &out,
        "--force",
    ])
    .envs(&env)
    .run()
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "refresh: {stderr}");
    assert!(
        stderr.contains(&format!("process {pid}")),
        "refresh: {stderr}"
    );
    // So is `export`.
    let output = pcq(&["export", "-o", &out, "--force"])
        .envs(&env)
        .run()
        .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "export: {stderr}");
    assert!(
        stderr.contains(&format!("process {pid}")),
        "export: {stderr}"
    );
    let output = first.finish().await;
    output.assert_code(0);
    assert_rows_exactly_once(&dir.join("out.csv"), 30);
    assert_one_request_id_per_customer(&sim);
    assert_eq!(posts(&sim).len(), 30, "the refused runs sent nothing");
    assert!(!lock.exists(), "the lock file goes with its run");

    // A lock file left by a dead process does not block.
    dir.write("out.csv.lock", "4000000");
    let output = pcq_io("run", &dir, &["--force", "--rate", "0"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(0);
}

// ---------------------------------------------------------------------------------------------
// 3. A cut answer is retried with the same MS-RequestId.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cut_off_mid_body_is_retried_with_the_same_request_id() {
    let sim = start_sim(SimConfig {
        script: vec![fault(1, FaultAction::Cut)],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("cut");
    dir.write("in.csv", soe_rows(2));
    let output = pcq_io("run", &dir, &["--rate", "0"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows[0]["outcome"], "exists", "{:?}", rows[0]);
    assert_eq!(rows[0]["attempts"], "2");
    assert_eq!(rows[0]["http_status"], "409");
    let ids = &posts_by_customer(&sim)[&cid(1)];
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "the retry carries the same request id");
    assert_eq!(rows[1]["outcome"], "created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_while_the_body_is_read_is_retried_with_the_same_request_id() {
    let sim = start_sim(SimConfig {
        script: vec![fault(1, FaultAction::SlowBody(Duration::from_millis(1500)))],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("slow-body");
    dir.write("in.csv", soe_rows(1));
    let output = pcq_io("run", &dir, &["--timeout", "0.5"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(0);
    let rows = results(&dir.join("out.csv"));
    assert_eq!(rows[0]["outcome"], "exists", "{:?}", rows[0]);
    assert_eq!(rows[0]["attempts"], "2");
    let ids = &posts_by_customer(&sim)[&cid(1)];
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "the retry carries the same request id");
}

// ---------------------------------------------------------------------------------------------
// 4. A success is confirmed, not assumed; bodies are capped.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_that_is_not_partner_center_is_checked_and_oversized_answers_are_refused() {
    let sim = start_sim(SimConfig {
        script: vec![
            fault(1, FaultAction::Html),
            fault(2, FaultAction::Big(3 * 1024 * 1024)),
        ],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("unconfirmed");
    dir.write("in.csv", soe_rows(3));
    let output = pcq_io("run", &dir, &["--rate", "0"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(1);
    let rows = results_by_row(&dir.join("out.csv"));
    // The proxy's page never reached Partner Center: the customer's list says so.
    assert_eq!(rows[0]["outcome"], "failed", "{:?}", rows[0]);
    assert_eq!(rows[0]["error_code"], "unconfirmed");
    assert_eq!(rows[0]["http_status"], "200");
    assert!(sim
        .holdings(CustomerId::parse(&cid(1)).expect("id"))
        .is_empty());
    // The oversized answer fails its attempt; the retry (same id) finds the create landed.
    assert_eq!(rows[1]["outcome"], "exists", "{:?}", rows[1]);
    assert_eq!(rows[1]["attempts"], "2");
    assert_eq!(rows[2]["outcome"], "created");
}

// ---------------------------------------------------------------------------------------------
// 5. The output is proven writable before the first request.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_output_stops_before_anything_is_sent_and_leaves_nothing() {
    let sim = start_sim(SimConfig::default()).await;
    let env = sim_env(&sim);
    let dir = work_dir("unwritable");
    dir.write("in.csv", soe_rows(20));
    #[cfg(unix)]
    let is_device = |path: &str| {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
    };
    #[cfg(not(unix))]
    let is_device = |_: &str| false;
    if is_device("/dev/full") {
        let output = pcq(&["run", "-i", &dir.s("in.csv"), "-o", "/dev/full", "--force"])
            .envs(&env)
            .run()
            .await;
        let stderr = text(&output.stderr);
        output.assert_code(2);
        assert!(stderr.contains("/dev/full"), "{stderr}");
        assert!(
            sim.api_requests().is_empty(),
            "nothing was sent: {:?}",
            sim.api_requests().len()
        );
        assert!(!Path::new("/dev/full.journal").exists());
        assert!(!Path::new("/dev/full.lock").exists());
        assert!(
            is_device("/dev/full"),
            "a failed start never removes what it did not create (here a device, even as root)"
        );
    }
    // A journal that cannot be created: exit 2, nothing sent, no results file left behind.
    std::fs::create_dir(dir.join("out.csv.journal")).expect("dir in the way");
    let output = pcq_io("run", &dir, &[]).envs(&env).run().await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(stderr.contains("journal"), "{stderr}");
    assert!(sim.api_requests().is_empty());
    assert!(
        !dir.join("out.csv").exists(),
        "no 0-byte results file blocks the rerun"
    );
    std::fs::remove_dir(dir.join("out.csv.journal")).expect("cleared");
    // A 0-byte results file (as a full disk used to leave) does not block --resume.
    dir.write("out.csv", "");
    let output = pcq_io("run", &dir, &["--resume", "--rate", "0"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(0);
    assert_rows_exactly_once(&dir.join("out.csv"), 20);
}

// ---------------------------------------------------------------------------------------------
// 6. Outages stop the run; --resume finishes it.

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
    assert_one_request_id_per_customer(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_server_failures_in_a_row_trip_the_breaker() {
    let sim = start_sim(SimConfig {
        script: (1..=30).map(|n| fault(n, status(503, None))).collect(),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("breaker");
    dir.write("in.csv", soe_rows(40));
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
    assert_one_request_id_per_customer(&sim);
    assert_rows_exactly_once(&dir.join("out.csv"), 40);
}

// ---------------------------------------------------------------------------------------------
// Issue 10, item 3: MFA and other unrecoverable 401s stop the run.

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
    assert_one_request_id_per_customer(&sim);
}

// ---------------------------------------------------------------------------------------------
// Issue 10, item 6: Retry-After past --max-backoff is obeyed; past --max-retry-after it is not.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_obeyed_past_max_backoff_and_refused_past_max_retry_after() {
    let sim = start_sim(SimConfig {
        script: vec![
            fault(1, status(503, Some("2"))),
            fault(2, status(429, Some("5"))),
        ],
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("retry-after");
    dir.write("in.csv", soe_rows(2));
    dir.write("c.toml", "max_retry_after = 3.0\n");
    let output = pcq_io(
        "run",
        &dir,
        &[
            "--rate",
            "0",
            "--concurrency",
            "1",
            "--max-backoff",
            "0.1",
            "--config",
            &dir.s("c.toml"),
        ],
    )
    .envs(&sim_env(&sim))
    .run()
    .await;
    output.assert_code(1);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows[0]["outcome"], "created");
    assert_eq!(rows[0]["attempts"], "2");
    let times: Vec<u64> = posts(&sim)
        .iter()
        .filter(|p| p.path.contains(&cid(1)))
        .map(|p| p.at_ms)
        .collect();
    assert!(
        times[1] - times[0] >= 1_800,
        "waited the service's 2 s, not --max-backoff's 0.1 s: {times:?}"
    );
    assert_eq!(rows[1]["outcome"], "failed");
    assert_eq!(rows[1]["http_status"], "429");
    assert!(
        rows[1]["error_message"].contains("Retry-After: 5")
            && rows[1]["error_message"].contains("--max-retry-after 3"),
        "{:?}",
        rows[1]
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Smaller: SIGHUP/SIGQUIT, control characters.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_sigquit_drain_like_sigterm() {
    for sig in ["HUP", "QUIT"] {
        let sim = start_sim(SimConfig {
            latency: Duration::from_millis(40),
            ..SimConfig::default()
        })
        .await;
        let dir = work_dir("hup");
        dir.write("in.csv", soe_rows(100));
        let env = sim_env(&sim);
        let mut child = pcq_io("run", &dir, &["--rate", "0", "--concurrency", "2"])
            .envs(&env)
            .spawn();
        wait_until("4 rows posted", || posts(&sim).len() >= 4).await;
        #[cfg(target_os = "linux")]
        child.wait_for_signal_handlers().await;
        child.signal(sig);
        let output = child.finish().await;
        let stderr = output.stderr();
        output.assert_code(130);
        assert!(stderr.contains("--resume"), "{sig}: {stderr}");
        let output = pcq_io("run", &dir, &["--resume", "--rate", "0"])
            .envs(&env)
            .run()
            .await;
        output.assert_code(0);
        assert_rows_exactly_once(&dir.join("out.csv"), 100);
        assert_one_request_id_per_customer(&sim);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_be_deleted_is_reported() {
    let sim = start_sim(SimConfig {
        latency: Duration::from_millis(60),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("journal-stays");
    dir.write("in.csv", soe_rows(10));
    let child = pcq_io("run", &dir, &["--rate", "0", "--concurrency", "1"])
        .envs(&sim_env(&sim))
        .spawn();
    let journal = dir.join("out.csv.journal");
    wait_until("the run's journal", || journal.exists()).await;
    // Something the run cannot delete now stands where its journal was.
    std::fs::remove_file(&journal).expect("journal removed");
    std::fs::create_dir(&journal).expect("dir");
    std::fs::write(journal.join("keep"), "x").expect("file in it");
    let output = child.finish().await;
    let stderr = text(&output.stderr);
    output.assert_code(0);
    assert!(
        stderr.contains("could not be deleted") && stderr.contains("out.csv.journal"),
        "{stderr}"
    );
}

/// A bare HTTP/1.1 server that answers every API request and then closes the connection without
/// saying so (no `Connection: close`), as a server whose keep-alive timeout strikes at once would.
/// Returns its base URL and the count of API requests it read.
fn closing_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if line.contains("/oauth2/token") {
                        let answer = r#"{"token_type":"Bearer","expires_in":"3600","access_token":"raw-at","refresh_token":"raw-rt"}"#;
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                        continue;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let answer =
                        r#"{"qualification":"StateOwnedEntity","vettingStatus":"Approved"}"#;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    // Closed a moment later, keep-alive never withdrawn: the client's next
                    // request is already on its way and is never read.
                    std::thread::sleep(Duration::from_millis(20));
                    return;
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_the_server_closed_costs_no_attempt() {
    let (url, seen) = closing_server();
    let dir = work_dir("keep-alive");
    dir.write("in.csv", soe_rows(30));
    let env = vec![
        ("PC_BASE_URL".to_string(), url.clone()),
        ("PC_AUTHORITY".to_string(), url),
        ("PC_TENANT_ID".to_string(), "t".to_string()),
        ("PC_CLIENT_ID".to_string(), "c".to_string()),
        ("PC_CLIENT_SECRET".to_string(), "s".to_string()),
        ("PC_REFRESH_TOKEN".to_string(), "r".to_string()),
    ];
    let output = pcq_io(
        "run",
        &dir,
        &["--rate", "0", "--concurrency", "1", "--max-attempts", "1"],
    )
    .envs(&env)
    .run()
    .await;
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows.len(), 30);
    assert!(
        rows.iter()
            .all(|r| r["outcome"] == "created" && r["attempts"] == "1"),
        "{rows:?}"
    );
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 30);
}
