//! What a finished command prints and records: the summary, its JSON event, the metrics file and the resume command.

use super::*;
use std::fmt::Write as _;

/// The JSON "finished" event of every job: its own fields (each followed by a comma), then the
/// ones every job's [`Ending`](crate::engine::Ending) has.
macro_rules! finished_event {
    ($ending:expr, $message:literal, $($fields:tt)*) => {{
        let ending: &crate::engine::Ending = $ending;
        tracing::info!(
            $($fields)*
            requests = ending.stats.requests(),
            retries = ending.stats.retries(),
            throttled = ending.stats.throttled(),
            pauses = ending.pauses,
            elapsed_s = ending.elapsed.as_secs_f64(),
            interrupted = ending.interrupted,
            stopped = ending.fatal.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            $message
        )
    }};
}

/// How one job's report is told: the summary on standard error and the JSON "finished" event.
/// One trait, so every command ends through [`Session::finish`];
/// implemented by each command's flags, which name the files the summary speaks of.
pub(super) trait Summary {
    /// The report it tells.
    type Report: JobReport;
    /// The summary text, ending in a newline.
    fn text(&self, report: &Self::Report, rate: Option<&RateFigures>) -> String;
    /// The summary as one structured event, for `--log-format json`.
    fn event(&self, report: &Self::Report, rate: Option<&RateFigures>);
}

/// `run` and `reconcile`.
impl Summary for RunArgs {
    type Report = Report;

    fn text(&self, report: &Report, pace: Option<&RateFigures>) -> String {
        let mut text = match &report.example_request {
            Some(example) => {
                format!("pc-qualify: dry run; the first row would be sent as:\n\n{example}\n")
            }
            None => String::new(),
        };
        let stats = &report.ending.stats;
        let secs = report.ending.elapsed.as_secs_f64();
        let _ = writeln!(
            text,
            "pc-qualify: {} rows in {secs:.1}s ({:.1} rows/s){}; results: {}",
            report.rows,
            per_second(report.rows, secs),
            carried(report.carried_over, "run"),
            destination(&self.output),
        );
        let outcomes: Vec<String> = Outcome::ALL
            .iter()
            .map(|o| (o, stats.outcome(*o)))
            .filter(|(_, n)| *n > 0)
            .map(|(o, n)| format!("{o} {n}"))
            .collect();
        if !outcomes.is_empty() {
            let _ = writeln!(text, "  rows: {}", outcomes.join(", "));
        }
        let vetting = vetting_counts(stats, true);
        if !vetting.is_empty() {
            let _ = writeln!(text, "  vetting: {vetting}");
        }
        let denied: u64 = stats
            .vetting()
            .iter()
            .filter(|(status, _)| status.eq_ignore_ascii_case("Denied"))
            .map(|(_, n)| n)
            .sum();
        if denied > 0 {
            let _ = writeln!(
                text,
                "  DENIED: {denied} row(s) hold a Denied vetting decision; see vetting_reason (reconcile re-posts them only with --retry-denied)"
            );
        }
        let statuses: Vec<String> = stats
            .statuses()
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        let _ = writeln!(
            text,
            "  requests: {}{}{}, retries {}, throttled (429) {}, pauses {}",
            stats.requests(),
            if statuses.is_empty() {
                String::new()
            } else {
                format!(" ({})", statuses.join(", "))
            },
            match stats.transport_errors() {
                0 => String::new(),
                n => format!(", no answer {n}"),
            },
            stats.retries(),
            stats.throttled(),
            report.ending.pauses
        );
        // A dry run sends nothing, so there is no rate to speak of.
        if let Some(pace) = pace.filter(|_| stats.requests() > 0) {
            let _ = writeln!(text, "  {}", rate_line(pace));
        }
        let ms = |q| stats.latency_quantile(q).map(|d| d.as_secs_f64() * 1000.0);
        if let (Some(p50), Some(p95)) = (ms(0.5), ms(0.95)) {
            let max = stats.latency_max().as_secs_f64() * 1000.0;
            let _ = writeln!(
                text,
                "  latency: p50 {p50:.1} ms, p95 {p95:.1} ms, max {max:.1} ms"
            );
        }
        if report.token_file_failed {
            text.push_str("  ERROR: the rotated refresh token could not be saved to PC_REFRESH_TOKEN_FILE (see the log above); fix the file's permissions before the token ages out\n");
        }
        if report.internal_errors > 0 {
            let _ = writeln!(
                text,
                "  ERROR: {} row(s) hit an internal error (error_code internal; please report it); the journal is kept so --resume re-sends them safely",
                report.internal_errors
            );
        }
        let failed = stats.outcome(Outcome::Failed) + stats.outcome(Outcome::Invalid);
        let resumable = self.output != "-" && self.input != "-";
        if let Some(cause) = &report.ending.fatal {
            let _ = writeln!(text, "  STOPPED: {cause}");
            if resumable {
                let _ = writeln!(
                    text,
                    "  rows not in the results were not sent (or are journalled); to finish them run:\n    {}",
                    resume_command()
                );
            }
        } else if report.ending.interrupted && resumable {
            let _ = writeln!(
                text,
                "  interrupted; to finish the remaining rows run:\n    {}",
                resume_command()
            );
        } else if report.ending.interrupted {
            text.push_str("  interrupted; rows not in the results were not finished (--resume needs files for --input and --output)\n");
        } else if failed > 0 && resumable && !self.dry_run {
            let _ = writeln!(
                text,
                "  {failed} row(s) failed or were invalid (see error_code/error_message); after fixing the input, retry just those rows with:\n    {}",
                resume_command()
            );
        }
        text
    }

    fn event(&self, report: &Report, rate: Option<&RateFigures>) {
        let stats = &report.ending.stats;
        finished_event!(
            &report.ending,
            "run finished",
            rows = report.rows,
            carried_over = report.carried_over,
            created = stats.outcome(Outcome::Created),
            exists = stats.outcome(Outcome::Exists),
            failed = stats.outcome(Outcome::Failed),
            invalid = stats.outcome(Outcome::Invalid),
            duplicate = stats.outcome(Outcome::Duplicate),
            planned = stats.outcome(Outcome::Planned),
            token_file_failed = report.token_file_failed,
            rate_mode = rate.map(|r| r.mode.name()),
            rate_last = rate.and_then(|r| r.last),
            rate_min = rate.and_then(|r| r.min),
            rate_max = rate.and_then(|r| r.max),
            internal_errors = report.internal_errors,
        );
    }
}

/// `refresh`.
impl Summary for RefreshArgs {
    type Report = crate::engine::refresh::RefreshReport;

    fn text(&self, report: &Self::Report, _: Option<&RateFigures>) -> String {
        let stats = &report.ending.stats;
        let vetting = vetting_counts(stats, true);
        let mut text = format!(
            "pc-qualify: refreshed {} of {} rows in {:.1}s ({} could not be read); results: {}\n  vetting: {}\n  requests: {}, retries {}, throttled (429) {}\n",
            report.read,
            report.rows,
            report.ending.elapsed.as_secs_f64(),
            report.unread,
            match report.written || self.output == "-" {
                true => destination(&self.output).to_string(),
                // Stopped before every row was written: the file is not replaced.
                false => format!("none written ({} left as it was)", self.output),
            },
            if vetting.is_empty() { "-" } else { &vetting },
            stats.requests(),
            stats.retries(),
            stats.throttled(),
        );
        if let Some(cause) = &report.ending.fatal {
            text.push_str(&format!("  STOPPED: {cause}\n"));
        }
        if self.service.sandbox && report.unread > 0 {
            // Each --sandbox starts an empty simulator: an earlier sandbox run's customers are
            // not in it, so every row reads as gone. Say so rather than let it look like a fault.
            text.push_str("  note: --sandbox starts a new, empty simulator for each command, so it holds none of an earlier sandbox run's customers (they read as gone); to refresh a sandbox run, run both commands against one `pc-qualify simulate` instead (docs/sandbox.md)\n");
        }
        text
    }

    fn event(&self, report: &Self::Report, _: Option<&RateFigures>) {
        finished_event!(
            &report.ending,
            "refresh finished",
            rows = report.rows,
            read = report.read,
            unread = report.unread,
        );
    }
}

/// `export`.
impl Summary for ExportArgs {
    type Report = crate::engine::export::ExportReport;

    fn text(&self, report: &Self::Report, _: Option<&RateFigures>) -> String {
        let output = &self.output;
        let stats = &report.ending.stats;
        let secs = report.ending.elapsed.as_secs_f64();
        let rate = per_second(report.customers, secs);
        let carried = carried(report.carried_over, "export");
        let mut text = format!(
            "pc-qualify: exported {} customers{carried} ({} rows, {} list page{}) in {secs:.1}s ({rate:.1} customers/s); output: {}\n",
            report.customers,
            report.rows,
            report.pages,
            if report.pages == 1 { "" } else { "s" },
            destination(output),
        );
        let vetting = vetting_counts(stats, false);
        if !vetting.is_empty() {
            let _ = writeln!(text, "  vetting: {vetting}");
        }
        let _ = writeln!(
            text,
            "  requests: {}, retries {}, throttled (429) {}, pauses {}",
            stats.requests(),
            stats.retries(),
            stats.throttled(),
            report.ending.pauses
        );
        // A forced export that did not complete wrote nothing: the earlier file stays, and there is
        // no partial export for --resume to continue.
        let resumable = output != "-" && !report.kept_earlier;
        if report.kept_earlier {
            let _ = writeln!(
                text,
                "  the export did not complete, so {output} was left as it was (the earlier export): run the same command again"
            );
        }
        if report.unread > 0 {
            let _ = writeln!(
                text,
                "  ERROR: the qualifications of {} customer(s) could not be read; their rows have empty vetting columns (see the log){}",
                report.unread,
                if resumable { "; --resume reads just those again" } else { "" }
            );
        }
        if let Some(error) = &report.list_error {
            let more = resumable.then_some("; --resume continues it");
            let more = more.unwrap_or_default();
            let _ = writeln!(text, "  ERROR: the export is incomplete: {error}{more}");
        }
        if let Some(cause) = &report.ending.fatal {
            let _ = writeln!(text, "  STOPPED: {cause}");
        } else if report.ending.interrupted && resumable {
            text.push_str("  interrupted; the output holds the customers finished so far: run the same command with --resume to finish it (or --force to start over)\n");
        } else if report.ending.interrupted && !report.kept_earlier {
            text.push_str("  interrupted; only the customers written so far were exported: run the same command again for a complete export\n");
        }
        text
    }

    fn event(&self, report: &Self::Report, _: Option<&RateFigures>) {
        finished_event!(
            &report.ending,
            "export finished",
            customers = report.customers,
            carried_over = report.carried_over,
            rows = report.rows,
            unread = report.unread,
            pages = report.pages,
            list_error = report.list_error.as_deref().unwrap_or(""),
        );
    }
}

/// The summary's vetting counts, `Approved 3, InReview 2`; rows with no vetting state are left
/// out of a run's (they are rows, not customers holding nothing).
fn vetting_counts(stats: &Stats, skip_none: bool) -> String {
    let counts = stats.vetting().into_iter();
    let counts = counts.filter(|(status, _)| !skip_none || status != "none");
    let counts: Vec<String> = counts.map(|(status, n)| format!("{status} {n}")).collect();
    counts.join(", ")
}

/// `count` per second over `secs` (0 when no time passed).
fn per_second(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// Where a command wrote, as its summary names it.
fn destination(output: &str) -> &str {
    match output {
        "-" => "standard output",
        path => path,
    }
}

/// ` (+N carried over from the earlier run)`, when a resume kept rows of an earlier `what`.
fn carried(rows: u64, what: &str) -> String {
    match rows {
        0 => String::new(),
        n => format!(" (+{n} carried over from the earlier {what})"),
    }
}

/// The summary's rate line: what the pacer allowed, and how far 429s pushed it.
fn rate_line(rate: &RateFigures) -> String {
    let mode = rate.mode.name();
    match (rate.last, rate.min, rate.max) {
        (Some(last), Some(min), Some(max)) if min == max => {
            format!("rate: {mode}, {last:.1}/s throughout")
        }
        (Some(last), Some(min), Some(max)) => {
            format!("rate: {mode}, ended at {last:.1}/s (lowest {min:.1}/s, highest {max:.1}/s)")
        }
        // Unlimited and never throttled: nothing was paced.
        _ => format!("rate: {mode}, never throttled"),
    }
}

/// This process's own command line with `--resume` in place of `--force`, quoted for the user's shell.
pub(super) fn resume_command() -> String {
    resume_command_from(std::env::args())
}

/// [`resume_command`] for a given command line (the first item is the program).
fn resume_command_from(args: impl Iterator<Item = String>) -> String {
    let mut args: Vec<String> = args.filter(|a| a != "--force" && a != "--resume").collect();
    if let Some(first) = args.first_mut() {
        *first = "pc-qualify".to_string();
    }
    // Right after the subcommand, whatever global flags stand before it.
    let at = args
        .iter()
        .position(|a| a == "run" || a == "reconcile")
        .map_or(args.len().min(2), |i| i + 1);
    args.insert(at, "--resume".to_string());
    let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    quoted.join(" ")
}

/// `arg` quoted for the shell the user has, so a printed hint pastes as it is.
pub(super) fn shell_quote(arg: &str) -> String {
    quote(arg, cfg!(windows))
}

/// `arg` as it is when every byte is alphanumeric or safe in the shell; otherwise POSIX single
/// quotes, or on Windows double quotes, the one form cmd.exe and PowerShell both read (cmd.exe
/// passes single quotes through literally). A Windows file name cannot hold `"`; `%` (cmd.exe)
/// and `$` or a backtick (PowerShell) still expand inside them and no escape reads the same in
/// both shells, so such an argument is left as the user typed it, quoted. PowerShell reads an
/// unquoted `,` as an array (`schools,2024.csv` becomes two arguments) and a leading `@` as
/// splatting, so on Windows both are quoted too.
fn quote(arg: &str, windows: bool) -> String {
    let safe: &[u8] = if windows { b"-_./\\:+=" } else { b"-_./=:,@%+" };
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || safe.contains(&b));
    if plain {
        arg.to_string()
    } else if windows {
        format!("\"{arg}\"")
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run_args(args: &[&str]) -> RunArgs {
        let cli = <Cli as clap::Parser>::try_parse_from(args).expect("valid command line");
        match cli.command {
            Command::Run(args) => args,
            other => panic!("not a run: {other:?}"),
        }
    }

    fn report(stats: Stats) -> Report {
        Report {
            ending: crate::engine::Ending {
                stats: Arc::new(stats),
                elapsed: Duration::from_secs(2),
                interrupted: false,
                pauses: 1,
                fatal: None,
                incomplete: false,
            },
            rows: 10,
            carried_over: 0,
            input_error: None,
            example_request: None,
            token_file_failed: false,
            internal_errors: 0,
        }
    }

    fn night() -> Stats {
        let stats = Stats::default();
        for _ in 0..7 {
            stats.record_outcome(Outcome::Created);
            stats.record_answer(201, Duration::from_millis(20));
        }
        for _ in 0..2 {
            stats.record_outcome(Outcome::Failed);
            stats.record_answer(503, Duration::from_millis(40));
        }
        stats.record_outcome(Outcome::Invalid);
        for _ in 0..6 {
            stats.record_vetting(Some("InReview"));
        }
        stats.record_vetting(Some("Denied"));
        stats.record_vetting(None);
        stats
    }

    #[test]
    fn the_run_summary_counts_rows_vetting_and_requests() {
        let args = run_args(&["pc-qualify", "run", "-i", "in.csv", "-o", "out.csv"]);
        let rate = RateFigures {
            mode: crate::partner_center::pacer::RateMode::Auto {
                start: 5.0,
                max: None,
            },
            last: Some(8.0),
            min: Some(2.5),
            max: Some(12.0),
            floor: 0.5,
        };
        let text = args.text(&report(night()), Some(&rate));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "pc-qualify: 10 rows in 2.0s (5.0 rows/s); results: out.csv"
        );
        assert_eq!(lines[1], "  rows: created 7, failed 2, invalid 1");
        assert!(lines[2].starts_with("  vetting: "), "{text}");
        assert!(
            lines[2].contains("InReview 6") && lines[2].contains("Denied 1"),
            "{text}"
        );
        assert!(!lines[2].contains("none"), "{text}");
        assert!(lines[3].starts_with("  DENIED: 1 row(s)"), "{text}");
        assert!(
            lines[4].starts_with("  requests: 9 (")
                && lines[4].contains("201: 7")
                && lines[4].contains("503: 2")
                && lines[4].ends_with("retries 0, throttled (429) 0, pauses 1"),
            "{text}"
        );
        assert_eq!(
            lines[5],
            "  rate: auto, ended at 8.0/s (lowest 2.5/s, highest 12.0/s)"
        );
        assert!(lines[6].starts_with("  latency: p50 "), "{text}");
        assert!(
            text.contains("3 row(s) failed or were invalid") && text.contains("--resume"),
            "{text}"
        );
    }

    #[test]
    fn a_stopped_run_names_its_cause_and_how_to_finish() {
        let args = run_args(&["pc-qualify", "run", "-i", "in.csv", "-o", "out.csv"]);
        let mut stopped = report(Stats::default());
        stopped.ending.fatal = Some(crate::partner_center::fatal::Cause::MfaRequired);
        let text = args.text(&stopped, None);
        assert!(text.contains("  STOPPED: "), "{text}");
        assert!(text.contains("900421"), "{text}");
        assert!(text.contains("pc-qualify login"), "{text}");
        assert!(text.contains("to finish them run:"), "{text}");
        assert!(!text.contains("interrupted"), "{text}");
    }

    #[test]
    fn standard_output_is_named_and_not_offered_for_resume() {
        let args = run_args(&["pc-qualify", "run", "-i", "in.csv", "-o", "-"]);
        let mut interrupted = report(Stats::default());
        interrupted.ending.interrupted = true;
        let text = args.text(&interrupted, None);
        assert!(text.contains("results: standard output"), "{text}");
        assert!(
            text.contains("--resume needs files for --input and --output"),
            "{text}"
        );
        assert!(
            !text.contains("rows:"),
            "no outcome line without rows: {text}"
        );
    }

    #[test]
    fn the_resume_hint_on_windows_is_double_quoted_for_cmd_and_powershell() {
        assert_eq!(quote("my customers.csv", true), "\"my customers.csv\"");
        assert_eq!(quote(r"C:\data\in.csv", true), r"C:\data\in.csv");
        assert_eq!(
            quote(r"C:\My Files\in.csv", true),
            r#""C:\My Files\in.csv""#
        );
        assert_eq!(quote("", true), "\"\"");
        // Regression: PowerShell split `schools,2024.csv` into two arguments.
        assert_eq!(
            quote(r"C:\data\schools,2024.csv", true),
            r#""C:\data\schools,2024.csv""#
        );
        assert_eq!(quote("@in.csv", true), "\"@in.csv\"");
        // The same line on Linux keeps POSIX quoting.
        assert_eq!(quote("my customers.csv", false), "'my customers.csv'");
    }

    #[test]
    fn the_resume_command_replaces_force_and_quotes_for_the_shell() {
        let line = |args: &[&str]| resume_command_from(args.iter().map(|a| a.to_string()));
        assert_eq!(
            line(&[
                "/usr/bin/pc-qualify",
                "-v",
                "run",
                "--force",
                "-i",
                "my file.csv",
                "-o",
                "o.csv"
            ]),
            "pc-qualify -v run --resume -i 'my file.csv' -o o.csv"
        );
        assert_eq!(
            line(&[
                "pcq",
                "reconcile",
                "--resume",
                "-i",
                "it's.csv",
                "-o",
                "r.csv"
            ]),
            "pc-qualify reconcile --resume -i 'it'\\''s.csv' -o r.csv"
        );
        assert_eq!(quote("", false), "''");
        assert_eq!(quote("a-b_c./=:,@%+", false), "a-b_c./=:,@%+");
        assert_eq!(quote("$HOME", false), "'$HOME'");
    }
}
