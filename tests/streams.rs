//! Text that is not UTF-8 on standard input: spooled (for `--validation-code auto`) it is
//! refused before anything is sent, like a file; streamed, the run stops at the bad line and
//! says which row was the last one read and sent.

use crate::common::*;

/// Two good rows, then a Latin-1 byte on line 4 (row 3), then a good row.
fn latin1_at_row_3(qualification: &str) -> Vec<u8> {
    let mut bytes = format!(
        "customer_id,qualification,note\n{},{qualification},ok\n{},{qualification},ok\n{},{qualification},Mus",
        cid(1),
        cid(2),
        cid(3)
    )
    .into_bytes();
    bytes.extend_from_slice(b"\xe9e\n");
    bytes.extend_from_slice(format!("{},{qualification},ok\n", cid(4)).as_bytes());
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_standard_input_stops_at_a_non_utf8_line_naming_the_last_row_sent() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("stdin-latin1");
    let out = dir.s("out.csv");
    let output = pcq(&["run", "-i", "-", "-o", &out, "--rate", "0"])
        .envs(&sim_env(&sim))
        .stdin(latin1_at_row_3("StateOwnedEntity"))
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(1);
    assert!(
        stderr.contains("not UTF-8") && stderr.contains("line 4"),
        "{stderr}"
    );
    assert!(
        stderr.contains("every row up to row 2 (the last one read)"),
        "{stderr}"
    );
    let rows: Vec<String> = results_by_row(&dir.join("out.csv"))
        .iter()
        .map(|r| r["row"].clone())
        .collect();
    assert_eq!(rows, ["1", "2"]);
    assert_eq!(posts(&sim).len(), 2, "nothing after the bad line was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_standard_input_is_refused_before_anything_is_sent() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("stdin-latin1-auto");
    let out = dir.s("out.csv");
    let output = pcq(&["run", "-i", "-", "-o", &out, "--validation-code", "auto"])
        .envs(&sim_env(&sim))
        .stdin(latin1_at_row_3("GCC"))
        .run()
        .await;
    let stderr = text(&output.stderr);
    output.assert_code(2);
    assert!(
        stderr.contains("not UTF-8") && stderr.contains("line 4"),
        "{stderr}"
    );
    assert!(sim.api_requests().is_empty(), "nothing was sent");
    assert!(!dir.join("out.csv").exists(), "no results file");
}

/// Standard input that never ends while it is copied aside (for `--validation-code auto`): the
/// copy waits on the blocking pool, so the runtime still hears SIGTERM and the run ends with
/// exit 130, nothing sent, no results file.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_standard_input_is_still_being_read_ends_the_run() {
    use std::time::{Duration, Instant};
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("stdin-hang");
    let out = dir.s("out.csv");
    // The rows are written and standard input is kept open: the copy never sees its end.
    let mut child = pcq(&["run", "-i", "-", "-o", &out, "--validation-code", "auto"])
        .envs(&sim_env(&sim))
        .stdin(format!("customer_id,qualification\n{},GCC\n", cid(1)))
        .spawn();
    // At the point: the blocking pool has a thread for the copy (the runtime has the first
    // one), and the stop handlers are in place.
    let tasks = format!("/proc/{}/task", child.pid());
    wait_until("a second thread (the copy of standard input)", || {
        std::fs::read_dir(&tasks).map_or(0, Iterator::count) >= 2
    })
    .await;
    child.wait_for_signal_handlers().await;
    child.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_status().is_none() {
        if Instant::now() > deadline {
            child.signal("KILL");
            panic!(
                "the run did not stop while its standard input was open\n{}",
                child.stderr()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.finish().await.assert_code(130);
    assert!(sim.api_requests().is_empty(), "nothing was sent");
    assert!(!dir.join("out.csv").exists(), "no results file");
}
