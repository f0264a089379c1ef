//! Where results go and what stands beside them: one writer per results file (the lock, by the
//! resolved path: symlinks and other spellings meet at one lock), devices such as /dev/null and
//! /dev/full, a journal that cannot be created or deleted, an output proven writable before the
//! first request, and a failed --force open that keeps the earlier file.

use std::path::Path;
use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_a_locked_results_file_gets_exit_2_naming_the_holder() {
    let (sim, dir, env) = sim_and_rows("lock", 30, 100).await;
    let (input, out) = (dir.s("in.csv"), dir.s("out.csv"));
    std::fs::write(
        dir.join("earlier.csv"),
        format!(
            "{RESULTS_HEADER}\n1,{},StateOwnedEntity,invalid,,,,,0,,,x,y,0\n",
            cid(1)
        ),
    )
    .expect("an earlier results file");
    let mut first = pcq_io("run", &dir, &["--rate", "0", "--concurrency", "1"])
        .envs(&env)
        .spawn();
    let lock = dir.join("out.csv.lock");
    first
        .wait_until("the first run's lock", || {
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
    assert_created_under_one_request_id(&sim);
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
    for extra in ["/dev/null.lock", "/dev/null.journal"] {
        assert!(!Path::new(extra).exists(), "{extra} left behind");
    }
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
    let mut first = pcq(&["run", "-i", &input, "-o", &out])
        .args(&["--rate", "0", "--concurrency", "1"])
        .envs(&env)
        .spawn();
    first
        .wait_until("the first run's lock", || {
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
    // Linux always has /dev/full: there the case is required, not skipped.
    #[cfg(target_os = "linux")]
    assert!(is_device("/dev/full"), "/dev/full is missing");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_be_deleted_is_reported() {
    let sim = start_sim(SimConfig {
        latency: Duration::from_millis(60),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("journal-stays");
    dir.write("in.csv", soe_rows(10));
    let mut child = pcq_io("run", &dir, &["--rate", "0", "--concurrency", "1"])
        .envs(&sim_env(&sim))
        .spawn();
    let journal = dir.join("out.csv.journal");
    child
        .wait_until("the run's journal", || journal.exists())
        .await;
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

/// A `--force` start whose open of the existing results file fails leaves the earlier file as it
/// was (it used to be removed). The open is made to fail with a file the kernel refuses to open for
/// writing even to root: a program that is running (ETXTBSY).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_start_that_cannot_open_the_results_keeps_the_earlier_file() {
    use std::time::Instant;

    /// The running program, killed however the test ends.
    struct Busy(std::process::Child);
    impl Drop for Busy {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    const ETXTBSY: i32 = 26;

    let sim = start_sim(SimConfig::default()).await;
    let dir = work_dir("forced-open");
    dir.write("in.csv", soe_rows(2));
    let out = dir.join("out.csv");
    std::fs::copy("/bin/sleep", &out).expect("a program to keep busy");
    let before = std::fs::read(&out).expect("read");
    // Starting it can itself meet ETXTBSY for a moment: a process forked by another test may still
    // hold the copy's write descriptor until its exec closes it. So retry, within a bound.
    let deadline = Instant::now() + READY_TIMEOUT;
    let _busy = loop {
        match std::process::Command::new(&out).arg("60").spawn() {
            Ok(child) => break Busy(child),
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("the copy of sleep does not start: {e}"),
        }
    };
    // Ready once the kernel holds the file as a running program's text; a kernel that never
    // refuses the open fails the test rather than letting it pass unchecked.
    wait_until(
        "the running program's file to refuse writing (ETXTBSY)",
        || {
            matches!(
                std::fs::OpenOptions::new().write(true).open(&out),
                Err(e) if e.raw_os_error() == Some(ETXTBSY)
            )
        },
    )
    .await;

    let output = pcq_io("run", &dir, &["--force"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    output.assert_code(2);
    let stderr = output.stderr();
    let path = out.display().to_string();
    // The cause (the kernel's "text file busy") is kept and printed once, after the path.
    assert!(stderr.contains(&format!("output {path}: ")), "{stderr}");
    assert_eq!(stderr.matches("os error 26").count(), 1, "{stderr}");
    assert!(posts(&sim).is_empty(), "nothing was sent");
    assert_eq!(
        std::fs::read(&out).ok(),
        Some(before),
        "the earlier file is neither removed nor changed"
    );
}
