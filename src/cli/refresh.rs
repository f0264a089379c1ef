//! `pc-qualify refresh`.

use super::*;

/// `refresh`.
pub(super) async fn refresh(
    args: RefreshArgs,
    quiet: bool,
    json: bool,
) -> Result<ExitCode, ErrorKind> {
    let (mut session, config, credentials) = Session::open("refresh", &args.service).await?;
    // Rows of the earlier results file: the bar counts them as they are written.
    session.show_progress(
        args.service.shows_progress(quiet),
        None,
        progress::Counting::Rows,
    );
    let result = crate::engine::refresh::execute(
        crate::engine::refresh::RefreshJob {
            input: args.input.clone(),
            output: args.output.clone(),
            force: args.force,
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
    ended.write_metrics(
        &report.stats,
        report.exit_code() == ExitCode::Success,
        report.pauses,
    );
    if json {
        tracing::info!(
            rows = report.rows,
            read = report.read,
            unread = report.unread,
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
            "refresh finished"
        );
    }
    if !quiet {
        let stats = &report.stats;
        let vetting: Vec<String> = stats
            .vetting()
            .iter()
            .filter(|(status, _)| status != "none")
            .map(|(status, n)| format!("{status} {n}"))
            .collect();
        eprintln!(
            "pc-qualify: refreshed {} of {} rows in {:.1}s ({} could not be read); results: {}\n  vetting: {}\n  requests: {}, retries {}, throttled (429) {}",
            report.read,
            report.rows,
            report.elapsed.as_secs_f64(),
            report.unread,
            if args.output == "-" { "standard output" } else { &args.output },
            if vetting.is_empty() { "-".to_string() } else { vetting.join(", ") },
            stats.requests(),
            stats.retries(),
            stats.throttled(),
        );
        if let Some(cause) = &report.fatal {
            eprintln!("  STOPPED: {cause}");
        }
    }
    Ok(report.exit_code())
}
