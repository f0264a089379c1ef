//! One path, one role (issue 22), and no writing through planted links: a command whose input, output, metrics file, config file, or a
//! file kept beside the output are one file, however spelled (the same path, through `..`, a
//! symlink or a hard link), is refused with exit 2 naming both roles, before anything is read,
//! written or sent; `--force` does not change that.

use std::path::{Path, PathBuf};

use crate::common::*;

/// The roles a `run` takes from its command line, each with its flag.
const NAMED: [&str; 4] = ["-i", "-o", "--metrics", "--config"];

/// The ways a second name can reach the first role's file.
#[derive(Debug, Clone, Copy)]
enum Spelling {
    Same,
    Dotted,
    #[cfg(unix)]
    Symlink,
    HardLink,
}

const SPELLINGS: &[Spelling] = &[
    Spelling::Same,
    Spelling::Dotted,
    #[cfg(unix)]
    Spelling::Symlink,
    Spelling::HardLink,
];

/// A second name for `file` in `dir`, made the way `spelling` says.
fn second_name(dir: &tempfile::TempDir, file: &Path, spelling: Spelling) -> PathBuf {
    match spelling {
        Spelling::Same => file.to_path_buf(),
        Spelling::Dotted => {
            let sub = dir.join("sub");
            std::fs::create_dir_all(&sub).expect("sub");
            sub.join("..").join(file.file_name().expect("name"))
        }
        #[cfg(unix)]
        Spelling::Symlink => {
            let link = dir.join("symlink");
            std::os::unix::fs::symlink(file, &link).expect("symlink");
            link
        }
        Spelling::HardLink => {
            let link = dir.join("hardlink");
            std::fs::hard_link(file, &link).expect("hard link");
            link
        }
    }
}

/// `run` (and `reconcile`) with every pair of its named roles on one file, in every spelling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_one_file_in_two_roles_however_spelled() {
    let sim = start_sim(SimConfig::default()).await;
    let env = sim_env(&sim);
    let contents = soe_rows(3);
    for (a, first) in NAMED.iter().enumerate() {
        for second in &NAMED[a + 1..] {
            for &spelling in SPELLINGS {
                let dir = work_dir("roles");
                let file = dir.write("shared.csv", &contents);
                let other = second_name(&dir, &file, spelling);
                let mut args: Vec<String> = vec!["run".into(), "--force".into()];
                for flag in NAMED {
                    let path = match flag {
                        f if f == *first => file.clone(),
                        f if f == *second => other.clone(),
                        "-i" => dir.write("in.csv", &contents),
                        "--config" => dir.write("config.toml", ""),
                        f => dir.join(&format!("{}.out", f.trim_start_matches('-'))),
                    };
                    args.push(flag.to_string());
                    args.push(path.display().to_string());
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let output = pcq(&args).envs(&env).run().await;
                let stderr = text(&output.stderr);
                let case = format!("{first} and {second} as {spelling:?}");
                assert_eq!(output.status.code(), Some(2), "{case}: {stderr}");
                assert!(stderr.contains("name the same file"), "{case}: {stderr}");
                assert_eq!(
                    std::fs::read_to_string(&file).expect("still there"),
                    contents,
                    "{case}: the file is unchanged"
                );
            }
        }
    }
    assert!(sim.api_requests().is_empty(), "nothing was sent");
}

/// A file the run keeps beside its output (lock, journal) named as another role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_kept_beside_the_output_cannot_be_another_role() {
    let sim = start_sim(SimConfig::default()).await;
    let env = sim_env(&sim);
    let dir = work_dir("side-roles");
    let input = dir.write("in.csv", soe_rows(2));
    for (side, flag) in [("out.csv.lock", "--metrics"), ("out.csv.journal", "-i")] {
        let side_path = dir.write(side, soe_rows(2));
        let named = if flag == "-i" {
            side_path.clone()
        } else {
            input.clone()
        };
        let out = dir.s("out.csv");
        let mut args = vec!["reconcile", "-o", &out, "--force"];
        let named_s = named.display().to_string();
        let side_s = side_path.display().to_string();
        args.extend(["-i", &named_s]);
        if flag == "--metrics" {
            args.extend(["--metrics", &side_s]);
        }
        let output = pcq(&args).envs(&env).run().await;
        let stderr = text(&output.stderr);
        output.assert_code(2);
        assert!(stderr.contains("name the same file"), "{side}: {stderr}");
        assert_eq!(std::fs::read_to_string(&side_path).ok(), Some(soe_rows(2)));
    }
    assert!(sim.api_requests().is_empty());
}

/// `refresh` through a hard link (it refused only the same path and symlinks before), `export`
/// with its metrics on its output, and `report` writing its page over the results it reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_export_and_report_refuse_one_file_in_two_roles() {
    let sim = start_sim(SimConfig::default()).await;
    let env = sim_env(&sim);
    let dir = work_dir("roles-others");
    let results = format!(
        "{RESULTS_HEADER}\n1,{},StateOwnedEntity,created,201,InReview,,,1,,,,,5\n",
        cid(1)
    );
    let earlier = dir.write("earlier.csv", &results);
    let linked = second_name(&dir, &earlier, Spelling::HardLink);
    let output = pcq(&[
        "refresh",
        "-i",
        &earlier.display().to_string(),
        "-o",
        &linked.display().to_string(),
        "--force",
    ])
    .envs(&env)
    .run()
    .await;
    output.assert_code(2);
    assert!(text(&output.stderr).contains("--input and --output name the same file"));

    let export = dir.write("export.csv", "kept");
    let export_s = export.display().to_string();
    let output = pcq(&["export", "-o", &export_s, "--metrics", &export_s, "--force"])
        .envs(&env)
        .run()
        .await;
    output.assert_code(2);
    assert!(text(&output.stderr).contains("--output and --metrics name the same file"));
    assert_eq!(
        std::fs::read_to_string(&export).ok().as_deref(),
        Some("kept")
    );

    let earlier_s = earlier.display().to_string();
    let output = pcq(&["report", &earlier_s, "--html", &earlier_s])
        .run()
        .await;
    output.assert_code(2);
    assert!(text(&output.stderr).contains("RESULTS and --html name the same file"));
    assert_eq!(std::fs::read_to_string(&earlier).ok(), Some(results));
    assert!(sim.api_requests().is_empty());
}

/// A link planted where the run keeps a file of its own (the lock, the journal, export's
/// `.unread` list) is refused, naming it, and the file it points at is left as it was.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_link_in_place_of_a_side_file_is_refused() {
    let sim = start_sim(SimConfig::default()).await;
    let env = sim_env(&sim);
    for side in ["out.csv.lock", "out.csv.journal", "out.csv.unread"] {
        let dir = work_dir("planted");
        let victim = dir.write("victim", "precious");
        std::os::unix::fs::symlink(&victim, dir.join(side)).expect("symlink");
        let output = if side.ends_with("unread") {
            pcq(&["export", "-o", &dir.s("out.csv")])
                .envs(&env)
                .run()
                .await
        } else if side.ends_with("journal") {
            // A fresh run removes a journal left behind (the link, not its target); --resume
            // appends to the one it finds.
            std::fs::remove_file(dir.join(side)).expect("unplant");
            dir.write("in.csv", soe_rows(2));
            pcq_io("run", &dir, &[])
                .envs(&env)
                .run()
                .await
                .assert_code(0);
            std::os::unix::fs::symlink(&victim, dir.join(side)).expect("symlink");
            dir.write("in.csv", soe_rows(3));
            pcq_io("run", &dir, &["--resume"]).envs(&env).run().await
        } else {
            dir.write("in.csv", soe_rows(2));
            pcq_io("run", &dir, &[]).envs(&env).run().await
        };
        let stderr = text(&output.stderr);
        output.assert_code(2);
        assert!(stderr.contains("never through a link"), "{side}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(&victim).ok().as_deref(),
            Some("precious"),
            "{side}: the link's target is untouched"
        );
    }
    // Only the journal case's first, clean run posted (its two rows).
    assert_eq!(posts(&sim).len(), 2, "nothing else was posted");
}
