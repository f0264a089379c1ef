//! `pc-qualify export`.

use super::*;

/// `export`.
pub(super) async fn export(
    args: ExportArgs,
    quiet: bool,
    json: bool,
) -> Result<ExitCode, ErrorKind> {
    let (mut session, config, credentials) = Session::open("export", &args.service).await?;
    session.show_progress(
        args.service.shows_progress(quiet),
        None,
        progress::Counting::Customers,
    );
    let result = crate::engine::export::execute(
        crate::engine::export::ExportJob {
            output: args.output.clone(),
            force: args.force,
            resume: args.resume,
            qualification: args.qualification,
            config,
            credentials,
            stats: session.stats.clone(),
            throttle: session.throttle.clone(),
        },
        session.stop.clone(),
    )
    .await;
    let ended = session.end(result).await?;
    let report = &ended.report;
    if let Some(error) = &report.list_error {
        tracing::error!("{error}");
    }
    ended.write_metrics(
        &report.stats,
        report.exit_code() == ExitCode::Success,
        report.pauses,
    );
    if json {
        tracing::info!(
            customers = report.customers,
            carried_over = report.carried_over,
            rows = report.rows,
            unread = report.unread,
            pages = report.pages,
            list_error = report.list_error.as_deref().unwrap_or(""),
            requests = report.stats.requests(),
            retries = report.stats.retries(),
            throttled = report.stats.throttled(),
            elapsed_s = report.elapsed.as_secs_f64(),
            interrupted = report.interrupted,
            stopped = report
                .fatal
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            "export finished"
        );
    }
    if !quiet {
        eprint!("{}", export_summary(report, &args.output));
    }
    Ok(report.exit_code())
}

pub(super) fn export_summary(report: &crate::engine::export::ExportReport, output: &str) -> String {
    use std::fmt::Write as _;
    let stats = &report.stats;
    let secs = report.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        report.customers as f64 / secs
    } else {
        0.0
    };
    let mut text = String::new();
    let carried = match report.carried_over {
        0 => String::new(),
        n => format!(" (+{n} carried over from the earlier export)"),
    };
    let _ = writeln!(
        text,
        "pc-qualify: exported {} customers{carried} ({} rows, {} list page{}) in {secs:.1}s ({rate:.1} customers/s); output: {}",
        report.customers,
        report.rows,
        report.pages,
        if report.pages == 1 { "" } else { "s" },
        if output == "-" { "standard output" } else { output },
    );
    let vetting: Vec<String> = stats
        .vetting()
        .iter()
        .map(|(status, n)| format!("{status} {n}"))
        .collect();
    if !vetting.is_empty() {
        let _ = writeln!(text, "  vetting: {}", vetting.join(", "));
    }
    let _ = writeln!(
        text,
        "  requests: {}, retries {}, throttled (429) {}, pauses {}",
        stats.requests(),
        stats.retries(),
        stats.throttled(),
        report.pauses
    );
    let resumable = output != "-";
    if report.unread > 0 {
        let _ = writeln!(
            text,
            "  ERROR: the qualifications of {} customer(s) could not be read; their rows have empty vetting columns (see the log){}",
            report.unread,
            if resumable { "; --resume reads just those again" } else { "" }
        );
    }
    if let Some(error) = &report.list_error {
        let _ = writeln!(
            text,
            "  ERROR: the export is incomplete: {error}{}",
            if resumable {
                "; --resume continues it"
            } else {
                ""
            }
        );
    }
    if let Some(cause) = &report.fatal {
        let _ = writeln!(text, "  STOPPED: {cause}");
    } else if report.interrupted && resumable {
        let _ = writeln!(
            text,
            "  interrupted; the output holds the customers finished so far: run the same command with --resume to finish it (or --force to start over)"
        );
    } else if report.interrupted {
        let _ = writeln!(
            text,
            "  interrupted; only the customers written so far were exported: run the same command again for a complete export"
        );
    }
    text
}
