//! Where results may go: a device such as `/dev/null` takes no lock or journal beside it, and a
//! results file reached through a symlink is the same file for the lock.

use std::path::Path;
use std::time::Duration;

use crate::common::*;

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_null_as_output_takes_no_lock_and_no_journal() {
    let sim = start_sim(SimConfig {
        latency: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await;
    let env = sim_env(&sim);
    let dir = work_dir("devnull");
    dir.write("in.csv", soe_rows(10));
    let mut child = pcq(&[
        "run",
        "-i",
        &dir.s("in.csv"),
        "-o",
        "/dev/null",
        "--force",
        "--rate",
        "0",
        "--concurrency",
        "1",
    ])
    .envs(&env)
    .spawn();
    // Watched while the run lasts: a finished run removes its lock and journal (as root they
    // would have been created in /dev; as anyone else the run would have failed on the lock).
    let mut seen = Vec::new();
    while child.try_status().is_none() {
        for extra in ["/dev/null.lock", "/dev/null.journal"] {
            if Path::new(extra).exists() && !seen.contains(&extra) {
                seen.push(extra);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let output = child.finish().await;
    output.assert_code(0);
    assert_eq!(posts(&sim).len(), 10);
    assert!(seen.is_empty(), "created beside /dev/null: {seen:?}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_to_a_results_file_in_use_is_refused_with_exit_2() {
    let sim = start_sim(SimConfig {
        latency: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    let env = sim_env(&sim);
    let dir = work_dir("symlink-lock");
    dir.write("in.csv", soe_rows(20));
    let (input, out) = (dir.s("in.csv"), dir.s("out.csv"));
    let first = pcq(&[
        "run",
        "-i",
        &input,
        "-o",
        &out,
        "--rate",
        "0",
        "--concurrency",
        "1",
    ])
    .envs(&env)
    .spawn();
    wait_until("the first run's lock", || {
        dir.join("out.csv.lock").exists() && dir.join("out.csv").exists()
    })
    .await;
    std::os::unix::fs::symlink(dir.join("out.csv"), dir.join("link.csv")).expect("symlink");
    std::fs::create_dir(dir.join("sub")).expect("sub");
    let pid = first.pid().to_string();
    for other in [dir.s("link.csv"), dir.s("sub/../out.csv")] {
        let output = pcq(&["run", "-i", &input, "-o", &other, "--force"])
            .envs(&env)
            .run()
            .await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{other}: {stderr}");
        assert!(
            stderr.contains(&format!("process {pid}")),
            "{other}: {stderr}"
        );
    }
    let output = first.finish().await;
    output.assert_code(0);
    assert_eq!(results(&dir.join("out.csv")).len(), 20);
    assert_eq!(posts(&sim).len(), 20, "the refused runs sent nothing");
}

/// `--resume` through a symlink continues the file the link points to and leaves the link a
/// link (the settled rows are rewritten in place of the real file, not of the link).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_through_a_symlink_continues_the_real_file() {
    use pc_qualify::domain::model::CustomerId;
    use pc_qualify::simulator::{FaultAction, ScriptedFault};
    let sim = start_sim(SimConfig {
        script: vec![ScriptedFault {
            customer_id: CustomerId::parse(&cid(2)).expect("id"),
            action: FaultAction::Status {
                status: 500,
                retry_after: None,
            },
        }],
        ..SimConfig::default()
    })
    .await;
    let env = sim_env(&sim);
    let dir = work_dir("symlink-resume");
    dir.write("in.csv", soe_rows(3));
    let output = pcq_io("run", &dir, &["--rate", "0", "--max-attempts", "1"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(1);
    std::os::unix::fs::symlink(dir.join("out.csv"), dir.join("link.csv")).expect("symlink");
    let output = pcq(&[
        "run",
        "-i",
        &dir.s("in.csv"),
        "-o",
        &dir.s("link.csv"),
        "--resume",
        "--rate",
        "0",
    ])
    .envs(&env)
    .run()
    .await;
    output.assert_code(0);
    let link = std::fs::symlink_metadata(dir.join("link.csv")).expect("link");
    assert!(link.file_type().is_symlink(), "the link is still a link");
    let rows = results_by_row(&dir.join("out.csv"));
    let outcomes: Vec<&str> = rows.iter().map(|r| r["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["created", "created", "created"], "{rows:?}");
}
