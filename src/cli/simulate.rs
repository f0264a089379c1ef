//! `pc-qualify simulate`: the stand-in for Partner Center, served until interrupted.

use super::*;
use crate::domain::atomic;
use std::time::Duration;

/// `pc-qualify simulate`: serve until interrupted.
pub(super) async fn simulate(args: SimulateArgs) -> Result<ExitCode, CliError> {
    let args = match args.config.clone() {
        Some(path) => {
            let text = atomic::read_text(&path, atomic::SMALL_FILE).map_err(|source| {
                JobError::ConfigFileIo {
                    path: path.clone(),
                    source,
                }
            })?;
            let file: SimulateArgs =
                toml::from_str(&text).map_err(|e| JobError::ConfigFileSyntax {
                    path,
                    source: crate::engine::config::TomlError::from(e),
                })?;
            args.or(file)
        }
        None => args,
    };
    let mut config = SimConfig::sandbox();
    let bad = |msg: String| CliError::from(JobError::Config(msg));
    let fault_rate = args.fault_rate.unwrap_or(0.0);
    let deny_rate = args.deny_rate.unwrap_or(0.0);
    for (name, value) in [("--fault-rate", fault_rate), ("--deny-rate", deny_rate)] {
        if !(0.0..=1.0).contains(&value) {
            return Err(bad(format!("{name} must be between 0 and 1; got {value}")));
        }
    }
    let throttle_rate = args.throttle_rate.unwrap_or(0.0);
    if !throttle_rate.is_finite() || throttle_rate < 0.0 {
        return Err(bad(format!(
            "--throttle-rate must be 0 or more; got {throttle_rate}"
        )));
    }
    // The file's text, or why it is not a simulator input (`parse` says what is wrong in it).
    fn read<T>(
        path: &std::path::Path,
        parse: fn(&str) -> Result<T, simulator::SimError>,
    ) -> Result<T, CliError> {
        let text = atomic::read_text(path, atomic::LIST_FILE).map_err(|source| {
            InputFileError::InputIo {
                path: path.display().to_string(),
                source,
            }
        })?;
        parse(&text).map_err(|source| CliError::SimulatorInput {
            path: path.display().to_string(),
            source,
        })
    }
    if let Some(path) = &args.preload {
        let preload = read(path, simulator::parse_preload)?;
        (config.preload, config.customers) = (preload.entries, preload.profiles);
    }
    if let Some(path) = &args.script {
        config.script = read(path, simulator::parse_script)?;
    }
    config.latency = Duration::from_millis(args.latency_ms.unwrap_or(0));
    config.token_ttl = Duration::from_secs(args.token_ttl.unwrap_or(3600).max(1));
    config.fault_rate = fault_rate;
    config.throttle_rate = throttle_rate;
    config.throttle_burst = args.throttle_burst;
    config.throttle_changes = args
        .throttle_change
        .iter()
        .map(|text| simulator::parse_throttle_change(text))
        .collect::<Result<_, _>>()
        .map_err(CliError::ThrottleChange)?;
    config.retry_after_secs = args.retry_after.unwrap_or(1);
    config.seed = args.seed.unwrap_or(0);
    config.vetting_delay = Duration::from_secs(args.vetting_secs.unwrap_or(60));
    config.deny_rate = deny_rate;
    config.require_2022 = args.require_2022;
    config.record = !args.no_record;
    config.cloud = args.cloud.unwrap_or_default();
    config.public_client = args.public_client;
    config.device_polls = args.device_polls;
    config.device_interval_secs = args.device_interval.unwrap_or(5).clamp(1, 300);
    config.answer_shape = args.answer_shape.unwrap_or_default();
    config.mfa_after = args.mfa_after;
    config.token_outage_after = args.token_outage_after;
    config.token_throttle_after = args.token_throttle_after;
    config.token_throttle_count = args.token_throttle_count;
    config.token_expires_in = args.token_expires_in;
    let listen = args
        .listen
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
    let handle = simulator::start(config, listen)
        .await
        .map_err(CliError::SandboxStart)?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening {}", handle.base_url());
        let _ = out.flush();
    }
    let stop = Stop::default();
    let signals = tokio::spawn(forward_signals(stop.clone()));
    stop.wait().await;
    signals.abort();
    handle.shutdown().await;
    Ok(ExitCode::Success)
}
