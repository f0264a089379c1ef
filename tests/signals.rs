//! Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT drain the run and exit 130 with the resume command,
//! whatever it is doing (posting, still reading standard input, waiting for a sign-in). Each test
//! sends its signal only once the child shows it is at the point (rows on file, requests received,
//! its stop handlers in place), never after a fixed sleep.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use crate::login::{login_env, BrowserLogin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_exits_130_and_resumes() {
    crate::resume::kill_and_resume(Some("INT")).await;
}

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
        child
            .wait_until("4 rows posted", || posts(&sim).len() >= 4)
            .await;
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
        assert_created_under_one_request_id(&sim);
    }
}

/// Standard input that never ends while it is copied aside (for `--validation-code auto`): the
/// copy waits on the blocking pool, so the runtime still hears SIGTERM and the run ends with
/// exit 130, nothing sent, no results file.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_standard_input_is_still_being_read_ends_the_run() {
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
    child
        .wait_until("a second thread (the copy of standard input)", || {
            std::fs::read_dir(&tasks).map_or(0, Iterator::count) >= 2
        })
        .await;
    child.wait_for_signal_handlers().await;
    child.signal("TERM");
    stops_while_standard_input_is_open(&mut child).await;
    child.finish().await.assert_code(130);
    assert!(sim.api_requests().is_empty(), "nothing was sent");
    assert!(!dir.join("out.csv").exists(), "no results file");
}

/// Regression: the sign-in did not watch for a stop, and the tool handles Ctrl-C itself, so a
/// slow token endpoint held Ctrl-C (of `run`, `refresh`, `export`) for as long as its token
/// attempts took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_slow_sign_in_ends_the_run_at_once() {
    let dir = work_dir("slow-sign-in");
    dir.write("in.csv", soe_rows(2));
    let earlier = format!(
        "row,customer_id,qualification,outcome,attempts\n1,{},StateOwnedEntity,created,1\n",
        cid(1)
    );
    dir.write("earlier.csv", earlier);
    let (input, earlier, output) = (dir.s("in.csv"), dir.s("earlier.csv"), dir.s("out.csv"));
    for command in [
        vec!["run", "-i", &input, "-o", &output],
        vec!["refresh", "-i", &earlier, "-o", &output],
        vec!["export", "-o", &output],
    ] {
        let sim = start_sim(SimConfig {
            token_latency: Duration::from_secs(60),
            ..SimConfig::default()
        })
        .await;
        // Each token attempt gives up after 2 s, so the first one shows in the simulator's log
        // (a request is logged when its handling ends) while the next ones are still to come.
        let mut child = pcq(&[&command[..], &["--timeout", "2"]].concat())
            .envs(&sim_env(&sim))
            .spawn();
        child.wait_for_signal_handlers().await;
        child
            .wait_until("a token attempt", || !token_forms(&sim).is_empty())
            .await;
        child.signal("INT");
        let started = std::time::Instant::now();
        let finished = child.finish_within(Duration::from_secs(20)).await;
        finished.assert_code(130);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(20), "{command:?}: {took:?}");
        assert!(
            sim.api_requests().is_empty(),
            "{command:?}: nothing was sent"
        );
        assert!(
            !dir.join("out.csv").exists(),
            "{command:?}: nothing was written"
        );
    }
}

/// Waits up to 20 s for a child that was sent a stop with its standard input still open; kills
/// it and fails if it is still running then.
async fn stops_while_standard_input_is_open(child: &mut Running) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_status().is_none() {
        if std::time::Instant::now() > deadline {
            child.signal("KILL");
            panic!(
                "the run did not stop while its standard input was open\n{}",
                child.stderr()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Regression: after Ctrl-C, a run reading its rows from standard input waited for the reader,
/// which sat in a read of an input that sent nothing more, until the input ended (85 s in the
/// review's run; Ctrl-C again did nothing, the tool handles it itself). The rows read before the
/// stop are on file; the run ends with 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_rows_still_come_from_standard_input_ends_the_run() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("stdin-stop");
    let out = dir.s("out.csv");
    let mut child = pcq(&["run", "-i", "-", "-o", &out])
        .envs(&sim_env(&sim))
        .stdin(soe_rows(3))
        .spawn();
    child
        .wait_until("the three rows posted", || posts(&sim).len() >= 3)
        .await;
    child
        .wait_until("their results on file", || {
            std::fs::read_to_string(dir.join("out.csv")).is_ok_and(|t| t.lines().count() == 4)
        })
        .await;
    child.wait_for_signal_handlers().await;
    child.signal("INT");
    stops_while_standard_input_is_open(&mut child).await;
    let output = child.finish().await;
    output.assert_code(130);
    assert!(output.stderr().contains("--resume"), "{}", output.stderr());
    assert_rows_exactly_once(&dir.join("out.csv"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_waiting_ends_the_login_with_130_and_saves_nothing() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("interrupt");
    let file = dir.s("token");
    let mut login = BrowserLogin::start(&login_env(&sim, true), &file).await;
    // Waiting for the redirect, with the stop handlers in place.
    login.child.wait_for_signal_handlers().await;
    login.child.signal("INT");
    let (code, stderr) = login.finish().await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted; nothing was saved"),
        "{stderr}"
    );
    assert!(!Path::new(&file).exists());
}
