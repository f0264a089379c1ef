//! Text that is not UTF-8 on standard input: spooled (for `--validation-code auto`) it is
//! refused before anything is sent, like a file; streamed, the run stops at the bad line and
//! says which row was the last one read and sent.

use std::io::Write as _;
use std::process::Stdio;

use crate::common::*;

async fn run_stdin(
    args: &[&str],
    env: &[(String, String)],
    input: Vec<u8>,
) -> std::process::Output {
    let mut cmd = pcq(args, env);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("binary runs");
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(&input);
        drop(stdin);
        child.wait_with_output().expect("output")
    })
    .await
    .expect("join")
}

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
    let dir = WorkDir::new("stdin-latin1");
    let out = dir.s("out.csv");
    let output = run_stdin(
        &["run", "-i", "-", "-o", &out, "--rate", "0"],
        &sim_env(&sim),
        latin1_at_row_3("StateOwnedEntity"),
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
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
    let dir = WorkDir::new("stdin-latin1-auto");
    let out = dir.s("out.csv");
    let output = run_stdin(
        &["run", "-i", "-", "-o", &out, "--validation-code", "auto"],
        &sim_env(&sim),
        latin1_at_row_3("GCC"),
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
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
    let dir = WorkDir::new("stdin-hang");
    let out = dir.s("out.csv");
    let mut child = pcq(
        &["run", "-i", "-", "-o", &out, "--validation-code", "auto"],
        &sim_env(&sim),
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("customer_id,qualification\n{},GCC\n", cid(1)).as_bytes())
        .expect("write");
    // Kept open: the copy never sees its end. Ready once the blocking pool has a thread (the
    // runtime itself has one), plus a margin for the signal handlers to be installed.
    let tasks = format!("/proc/{}/task", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&tasks).map_or(0, Iterator::count) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run did not stop while its standard input was open");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(stdin);
    let output = child.wait_with_output().expect("output");
    assert_eq!(code, Some(130), "{}", text(&output.stderr));
    assert!(sim.api_requests().is_empty(), "nothing was sent");
    assert!(!dir.join("out.csv").exists(), "no results file");
}
