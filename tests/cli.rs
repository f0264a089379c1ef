//! The operator's view of the binary: help texts, completions, `validate`, the dry run, the
//! `simulate` command, and the progress bar on a terminal.

use crate::common::*;

/// Help texts are a contract with the people reading them: a change must be deliberate.
/// insta keeps them in tests/snapshots; after an intended change, `INSTA_UPDATE=always cargo
/// test` (or `cargo insta review`) rewrites them. Under CI a difference fails and writes nothing.
#[test]
fn help_output_matches_the_snapshots() {
    let cases: [(&str, &[&str]); 10] = [
        ("help", &["--help"]),
        ("run-help", &["run", "--help"]),
        ("reconcile-help", &["reconcile", "--help"]),
        ("refresh-help", &["refresh", "--help"]),
        ("export-help", &["export", "--help"]),
        ("validate-help", &["validate", "--help"]),
        ("report-help", &["report", "--help"]),
        ("simulate-help", &["simulate", "--help"]),
        ("login-help", &["login", "--help"]),
        ("completions-help", &["completions", "--help"]),
    ];
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for (name, args) in cases {
            let output = pcq(args).envs(&[("COLUMNS".into(), "100".into())]).output();
            assert_eq!(output.status.code(), Some(0), "{name}");
            insta::assert_snapshot!(name, text(&output.stdout));
        }
    });
}

#[test]
fn every_subcommand_help_has_examples() {
    for command in [
        "run",
        "reconcile",
        "refresh",
        "validate",
        "report",
        "simulate",
        "login",
        "completions",
    ] {
        let output = pcq(&[command, "--help"]).output();
        let help = text(&output.stdout);
        assert!(help.contains("Examples:"), "{command} --help has examples");
        assert!(
            help.matches("pc-qualify ").count() >= 3,
            "{command} --help shows real commands"
        );
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let output = pcq(&["completions", shell]).output();
        output.assert_code(0);
        let script = text(&output.stdout);
        assert!(
            script.contains("reconcile") && script.contains("resume"),
            "{shell}"
        );
    }
    let output = pcq(&["completions", "tcsh"]).output();
    output.assert_code(2);
}

#[test]
fn validate_lists_each_problem_and_exits_by_validity() {
    let dir = work_dir("validate");
    dir.write(
        "bad.csv",
        format!(
            "customer_id,qualification,segment\n{},Education,K12\nnope,Education,K12\n{},Nonprofit,\n{},Education,K12\n",
            cid(1),
            cid(2),
            cid(1)
        ),
    );
    let output = pcq(&["validate", "--input", &dir.s("bad.csv")]).output();
    output.assert_code(1);
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "row 2: customer_id: not a GUID: nope");
    assert!(
        lines[1].starts_with("row 3: qualification: Nonprofit"),
        "{stdout}"
    );
    assert!(lines[2].starts_with("row 4: duplicate:"), "{stdout}");
    assert_eq!(
        lines.last().copied(),
        Some("4 row(s): 1 valid, 2 invalid, 1 duplicate(s)")
    );

    dir.write("good.csv", soe_rows(3));
    let output = pcq(&["validate", "-i", &dir.s("good.csv")]).output();
    output.assert_code(0);

    dir.write("nocol.csv", "customer_id\nx\n");
    let output = pcq(&["validate", "-i", &dir.s("nocol.csv")]).output();
    output.assert_code(2);
    assert!(text(&output.stderr).contains("missing required column qualification"));
}

#[test]
fn validate_takes_only_the_input_flags_and_honours_quiet_and_json() {
    let dir = work_dir("validate-flags");
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification\n{},StateOwnedEntity\nnope,StateOwnedEntity\n",
            cid(1)
        ),
    );
    let input = dir.s("in.csv");
    // A network setting in the environment (as a nightly job's shell has) or in the config file
    // is none of validate's business: it neither fails validate nor is accepted as a flag.
    dir.write(
        "net.toml",
        "base_url = \"http://proxy.example:8080\"\nrate = -3\n",
    );
    let env = [("PC_BASE_URL".to_string(), "http://proxy:8080".to_string())];
    let output = pcq(&["validate", "-i", &input, "--config", &dir.s("net.toml")])
        .envs(&env)
        .output();
    output.assert_code(1);
    let output = pcq(&["validate", "-i", &input, "--base-url", "https://x.example"]).output();
    output.assert_code(2);
    assert!(
        text(&output.stderr).contains("--base-url"),
        "{}",
        text(&output.stderr)
    );

    // -q: the problems only, no total.
    let output = pcq(&["validate", "-q", "-i", &input]).output();
    output.assert_code(1);
    assert_eq!(
        text(&output.stdout),
        "row 2: customer_id: not a GUID: nope\n"
    );

    // --log-format json: the problems on stdout, the total as one JSON event on stderr.
    let output = pcq(&["validate", "--log-format", "json", "-i", &input]).output();
    output.assert_code(1);
    assert_eq!(
        text(&output.stdout),
        "row 2: customer_id: not a GUID: nope\n"
    );
    let event = text(&output.stderr)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|v| v["message"] == "validate finished")
        .expect("a validate finished event");
    assert_eq!(event["rows"], 2);
    assert_eq!(event["valid"], 1);
    assert_eq!(event["invalid"], 1);
}

#[test]
fn a_simulate_config_with_an_unknown_key_is_refused_by_name() {
    let dir = work_dir("simulate-config");
    dir.write("sim.toml", "latency_ms = 5\nlatencyms = 5\n");
    let output = pcq(&["simulate", "--config", &dir.s("sim.toml")]).output();
    output.assert_code(2);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("latencyms"), "{stderr}");
}

#[test]
fn a_dry_run_needs_no_credentials_and_shows_the_request() {
    let dir = work_dir("dryrun");
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification,segment,website\n{},Education,K-12,a.example.edu\nbad,Education,K12,\n",
            cid(1)
        ),
    );
    let output = run_blocking(&[
        "run",
        "--dry-run",
        "-i",
        &dir.s("in.csv"),
        "-o",
        &dir.s("out.csv"),
    ]);
    let stderr = text(&output.stderr);
    output.assert_code(1);
    assert!(stderr.contains(&format!(
        "POST https://api.partnercenter.microsoft.com/v1/customers/{}/qualifications",
        cid(1)
    )));
    assert!(stderr.contains("Authorization: Bearer ***"), "{stderr}");
    assert!(stderr.contains(
        r#"{"qualification":"Education","educationSegment":"K12","website":"a.example.edu"}"#
    ));
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows[0]["outcome"], "planned");
    assert_eq!(rows[1]["outcome"], "invalid");
}

fn run_blocking(args: &[&str]) -> Finished {
    pcq(args).output()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulate_command_serves_what_run_needs() {
    let dir = work_dir("simulate");
    dir.write(
        "preload.csv",
        format!(
            "customer_id,qualification,vetting_status\n{},StateOwnedEntity,Approved\n",
            cid(1)
        ),
    );
    // The preload comes from the config file; its listen address is overridden by the flag
    // (flags > file), else the simulator would try port 9.
    dir.write(
        "sim.toml",
        format!(
            "listen = \"127.0.0.1:9\"\npreload = {:?}\nretry_after = 2\n",
            dir.s("preload.csv")
        ),
    );
    let mut server = pcq(&[
        "simulate",
        "--config",
        &dir.s("sim.toml"),
        "--listen",
        "127.0.0.1:0",
    ])
    .spawn();
    let listening = |stdout: &str| {
        stdout
            .lines()
            .next()
            .filter(|_| stdout.contains('\n'))
            .and_then(|l| l.strip_prefix("listening "))
            .map(str::to_string)
    };
    server
        .wait_for_stdout("the `listening URL` line", |o| listening(o).is_some())
        .await;
    let url = listening(&server.stdout()).expect("first stdout line is `listening URL`");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let env = vec![
        ("PC_BASE_URL".to_string(), url.clone()),
        ("PC_AUTHORITY".to_string(), url.clone()),
        (
            "PC_TENANT_ID".to_string(),
            simulator::SANDBOX_TENANT.to_string(),
        ),
        (
            "PC_CLIENT_ID".to_string(),
            simulator::SANDBOX_CLIENT_ID.to_string(),
        ),
        (
            "PC_CLIENT_SECRET".to_string(),
            simulator::SANDBOX_CLIENT_SECRET.to_string(),
        ),
        (
            "PC_REFRESH_TOKEN".to_string(),
            simulator::SANDBOX_REFRESH_TOKEN.to_string(),
        ),
    ];
    dir.write("in.csv", soe_rows(2));
    let output = pcq_io("run", &dir, &[]).envs(&env).run().await;
    output.assert_code(0);
    let rows = results_by_row(&dir.join("out.csv"));
    assert_eq!(rows[0]["outcome"], "exists");
    assert_eq!(rows[1]["outcome"], "created");
    let log: Vec<simulator::RecordedRequest> =
        pc_qualify::partner_center::client::test_http_client()
            .get(format!("{url}/_sim/requests"))
            .send()
            .await
            .expect("request log")
            .json()
            .await
            .expect("json log");
    assert_eq!(
        log.iter()
            .filter(|r| r.method == "POST" && r.path.starts_with("/v1/"))
            .count(),
        2
    );
    #[cfg(target_os = "linux")]
    server.wait_for_signal_handlers().await;
    server.signal("TERM");
    server.finish().await.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_bar_renders_on_a_terminal_and_the_summary_follows() {
    let Some(script) = outside_program(
        &["script"],
        &["--version"],
        "util-linux `script`: apt-get install -y bsdutils",
    ) else {
        return;
    };
    let sim = start_sim(SimConfig {
        latency: std::time::Duration::from_millis(30),
        ..SimConfig::default()
    })
    .await;
    let dir = work_dir("progress");
    dir.write("in.csv", soe_rows(60));
    // `script` gives the binary a pseudo-terminal, as an operator's shell would.
    let command = format!(
        "{} run --rate 0 --concurrency 2 -i {} -o {}",
        env!("CARGO_BIN_EXE_pc-qualify"),
        dir.s("in.csv"),
        dir.s("out.csv")
    );
    let output = Cmd::new(script)
        .envs(&sim_env(&sim))
        .env("COLUMNS", "160")
        .env("TERM", "xterm")
        .args(&["-qec", &command, "/dev/null"])
        .run()
        .await;
    let screen = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("/60 rows"),
        "the bar shows rows done of the total: {screen}"
    );
    assert!(screen.contains("created"), "live counts: {screen}");
    let summary_at = screen.find("pc-qualify: 60 rows").expect("summary printed");
    assert!(screen[summary_at..].contains("rows: created 60"));
    // Not a terminal: no bar at all.
    let output = pcq_io("run", &dir, &["--force", "--rate", "0"])
        .envs(&sim_env(&sim))
        .run()
        .await;
    assert!(!text(&output.stderr).contains("/60 rows"));
}

#[test]
fn validate_warns_on_education_and_gcc_for_one_customer_without_failing() {
    let dir = work_dir("pair");
    dir.write(
        "in.csv",
        format!(
            "customer_id,qualification,education_segment,validation_code\n{},Education,K12,\n{},StateOwnedEntity,,\n{},GovernmentCommunityCloud,,482913\n",
            cid(1),
            cid(2),
            cid(1)
        ),
    );
    let output = pcq(&["validate", "-i", &dir.s("in.csv")]).output();
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "a warning is not invalid: {stdout}"
    );
    assert!(
        stdout.contains(&format!("row 3: warning: customer {}", cid(1)))
            && stdout.contains("(row 1)")
            && stdout.contains("cannot be combined"),
        "{stdout}"
    );
    assert!(stdout.contains("3 row(s): 3 valid, 0 invalid"), "{stdout}");
    assert!(stdout.contains("1 warning(s)"), "{stdout}");
    // With an invalid row as well, the exit code is the invalid row's.
    dir.write(
        "bad.csv",
        format!(
            "customer_id,qualification,education_segment,validation_code\n{},Education,K12,\n{},GovernmentCommunityCloud,,482913\nnot-a-guid,StateOwnedEntity,,\n",
            cid(1),
            cid(1)
        ),
    );
    let output = pcq(&["validate", "-i", &dir.s("bad.csv")]).output();
    output.assert_code(1);
}

/// Issue 24: docs/commands.md names every flag each command's `--help` lists, and no flag the
/// command does not have, so the manual cannot drift from the binary unnoticed. A flag counts
/// as documented when it appears in backquotes (`--flag`) in the command's section.
#[test]
fn the_manual_names_every_flag_of_every_command_and_no_other() {
    use std::collections::BTreeSet;
    let manual = std::fs::read_to_string("docs/commands.md").expect("docs/commands.md");
    let flags_in = |text: &str, quoted: bool| -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let bytes = text.as_bytes();
        for (at, _) in text.match_indices("--") {
            if quoted && (at == 0 || !matches!(bytes[at - 1], b'`' | b' ' | b'[' | b',' | b'(')) {
                continue;
            }
            let name: String = text[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect();
            if name.len() > 1 && name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                found.insert(name.trim_end_matches('-').to_string());
            }
        }
        found
    };
    let commands = [
        "run",
        "reconcile",
        "refresh",
        "export",
        "validate",
        "report",
        "login",
        "simulate",
    ];
    for command in commands {
        let output = pcq(&[command, "--help"]).output();
        output.assert_code(0);
        let help = text(&output.stdout);
        // Flags are the first word of an option line in --help.
        let listed: BTreeSet<String> = help
            .lines()
            .filter_map(|line| {
                let line = line.trim_start();
                let flag = line.strip_prefix("-")?;
                let long = flag.split(", ").last().unwrap_or(flag);
                let long = long.strip_prefix("-").or(long.strip_prefix("--"))?;
                let long = long.trim_start_matches('-');
                let name: String = long
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                    .collect();
                (name.len() > 1).then_some(name)
            })
            .filter(|name| name != "help")
            .collect();
        let heading = format!("## `{command}`");
        let start = manual
            .find(&heading)
            .unwrap_or_else(|| panic!("no section {heading}"));
        let end = manual[start + heading.len()..]
            .find("\n## ")
            .map_or(manual.len(), |e| start + heading.len() + e);
        let section = &manual[start..end];
        // The global flags (-v, -q, --log-format) are documented once, above the commands.
        let intro = &manual[..manual.find("## `run`").expect("a run section")];
        let mut documented: BTreeSet<String> = flags_in(section, true)
            .union(&flags_in(intro, true))
            .cloned()
            .collect();
        // "Takes every flag of `run`": reconcile's section lists only what it adds.
        if section.contains("every flag of `run`") {
            let run = manual.find("## `run`").expect("run");
            let run_end = run + manual[run + 3..].find("\n## ").expect("next") + 3;
            documented.extend(flags_in(&manual[run..run_end], true));
        }
        let missing: Vec<_> = listed.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "{command}: --help lists {missing:?}, not in docs/commands.md"
        );
        // What the section names must exist somewhere in the command's help (a flag named in
        // prose for another command, e.g. "as for `run`", is allowed when run has it).
        let top = text(&pcq(&["--help"]).output().stdout);
        let all_help: BTreeSet<String> = commands
            .iter()
            .flat_map(|c| {
                let out = pcq(&[c, "--help"]).output();
                flags_in(&text(&out.stdout), false)
            })
            .chain(flags_in(&top, false))
            .collect();
        let unknown: Vec<_> = documented.difference(&all_help).collect();
        assert!(
            unknown.is_empty(),
            "{command}: docs/commands.md names {unknown:?}, which no --help lists"
        );
    }
}
