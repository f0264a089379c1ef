//! The command line: argument definitions, logging set-up, and dispatch to the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::auth::{Credentials, RefreshCredentials};
use crate::config::{credentials_from_env, RunConfig, Settings};
use crate::error::{ErrorKind, ExitCode};
use crate::input::{InputOptions, InputReader, Record};
use crate::metrics;
use crate::model::Outcome;
use crate::pipeline::{self, Job, Mode, Report, Stop};
use crate::progress::{self, Progress};
use crate::simulator::{self, SimConfig};
use crate::stats::Stats;
use crate::throttle::{RateFigures, Throttle};

/// The exit-code table, as a literal so that `concat!` can append it to each command's help.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0    every row created, exists, duplicate or planned
  1    the run finished and some rows failed or were invalid
  2    usage, configuration, credentials or unreadable input; nothing was sent
  130  interrupted (SIGINT/SIGTERM)"
    };
}

const EXIT_CODES: &str = exit_codes!();

const RUN_HELP: &str = concat!(
    "\
Input columns (header required; names case-insensitive, '-', '_' and ' ' alike):
  customer_id        customer tenant GUID (aliases: customer_tenant_id, tenant_id)
  qualification      Education, GovernmentCommunityCloud (GCC) or StateOwnedEntity
  validation_code    GCC validation code, digits (alias: code)         [optional]
  education_segment  K12 or HigherEducation (alias: segment)           [optional]
  website            the school's website, Education only               [optional]

Credentials come from the environment only: PC_ACCESS_TOKEN, or PC_TENANT_ID,
PC_CLIENT_ID, PC_CLIENT_SECRET and PC_REFRESH_TOKEN (or PC_REFRESH_TOKEN_FILE).

Examples:
  pc-qualify run --sandbox --input samples/customers.csv --output results.csv
  pc-qualify run --input schools.csv --output results.csv --education-segment K12 --rate 2
  pc-qualify run --input gcc.csv --output gcc-results.csv --config config/default.toml

",
    exit_codes!()
);

const RECONCILE_HELP: &str = concat!(
    "\
For each valid row, reads the customer's qualifications first:
  held (any vetting status but Denied)  -> exists, nothing posted
  held with vetting Denied              -> exists, nothing posted unless --retry-denied
  not held                              -> posted as `run` does -> created
With --dry-run it reads but posts nothing: rows that would be posted are `planned`.
Running it twice in a row posts nothing the second time.

Examples:
  pc-qualify reconcile --input schools.csv --output nightly-results.csv --force
  pc-qualify reconcile --sandbox --input samples/reconcile.csv --output r.csv --dry-run
  pc-qualify reconcile --input schools.csv --output r.csv --metrics /var/lib/node_exporter/pc_qualify.prom

",
    exit_codes!()
);

const REFRESH_HELP: &str = "\
Reads an earlier results file, re-reads the vetting state of every created/exists row, and
writes the same rows with vetting_status, vetting_reason and vetting_create_date brought up to
date. Outcomes stay as they were; nothing is posted. Rows it cannot read keep their old values
and get an error_message. failed/invalid/duplicate rows are copied unchanged.

Exit codes: 0 every row that needed a read was read; 1 some could not be read; 2 the input is
not a results file (or usage/credentials); 130 interrupted.

Examples:
  pc-qualify refresh --input results.csv --output refreshed.csv
  pc-qualify refresh --input nightly-results.csv --output - | grep Denied";

const VALIDATE_HELP: &str = "\
Prints each problem as `row N: field: reason`, then a total. Exits 0 when every row is valid,
1 when some are not, 2 when the file cannot be read or lacks a required column.

Examples:
  pc-qualify validate --input samples/customers.csv
  pc-qualify validate --input schools.csv --education-segment K12
  pc-qualify validate --input gcc.csv --api-contract 2021";

const COMPLETIONS_HELP: &str = "\
Examples:
  pc-qualify completions bash > /etc/bash_completion.d/pc-qualify
  pc-qualify completions zsh > \"${fpath[1]}/_pc-qualify\"
  pc-qualify completions fish > ~/.config/fish/completions/pc-qualify.fish";

const SIMULATE_HELP: &str = "\
Serves the Partner Center endpoints pc-qualify uses, plus the token endpoint, on a loopback
address. Sandbox credentials: tenant sandbox.onmicrosoft.com, client id
00000000-5a9d-4b0c-8e11-5a9db0c8e111, secret sandbox-client-secret, refresh token
sandbox-refresh-token. GET /_sim/requests lists what it received.

Examples:
  pc-qualify simulate --listen 127.0.0.1:8080
  pc-qualify simulate --listen 127.0.0.1:0 --latency-ms 20 --fault-rate 0.05 --seed 7
  pc-qualify simulate --throttle-rate 10 --retry-after 2 --preload my-customers.csv
  pc-qualify simulate --throttle-rate 15 --throttle-burst 15 --throttle-change 20:6";

/// Sets Microsoft Partner Center customer qualifications in bulk.
#[derive(Debug, Parser)]
#[command(name = "pc-qualify", version, about, after_long_help = EXIT_CODES)]
pub struct Cli {
    /// Logging options shared by every command.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Logging flags (logs go to stderr).
#[derive(Debug, Args)]
pub struct LogArgs {
    /// More log detail (-v debug, -vv trace)
    #[arg(short, long, action = clap::ArgAction::Count, global = true, display_order = 900)]
    pub verbose: u8,
    /// Only errors on stderr, no summary
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        display_order = 901
    )]
    pub quiet: bool,
    /// Log line format
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, display_order = 902)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set the qualification of every row of a CSV file
    #[command(after_long_help = RUN_HELP)]
    Run(RunArgs),
    /// Make Partner Center match the file: read each customer first, post only what is missing
    #[command(after_long_help = RECONCILE_HELP)]
    Reconcile(ReconcileArgs),
    /// Re-read the vetting state of an earlier results file's created/exists rows (never posts)
    #[command(after_long_help = REFRESH_HELP)]
    Refresh(RefreshArgs),
    /// Check an input file without sending anything (no network, no credentials)
    #[command(after_long_help = VALIDATE_HELP)]
    Validate(ValidateArgs),
    /// Serve the local stand-in for Partner Center
    #[command(after_long_help = SIMULATE_HELP)]
    Simulate(SimulateArgs),
    /// Print shell completions
    #[command(after_long_help = COMPLETIONS_HELP)]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// Flags of `run` (and `reconcile`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Input CSV (`-` for standard input)
    #[arg(short, long, value_name = "FILE")]
    pub input: String,
    /// Results CSV (`-` for standard output); never overwritten without --force
    #[arg(short, long, value_name = "FILE")]
    pub output: String,
    /// Overwrite an existing results file
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Continue an earlier run: rows already created/exists are kept and not sent again
    #[arg(long)]
    pub resume: bool,
    /// Validate and write `planned` rows; send no writes (run: nothing at all)
    #[arg(long)]
    pub dry_run: bool,
    /// Run against a local simulator started in-process (no account needed)
    #[arg(long)]
    pub sandbox: bool,
    /// TOML settings file (flags and environment win over it)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write Prometheus metrics here at the end (node_exporter textfile format)
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// No progress bar
    #[arg(long)]
    pub no_progress: bool,
    /// Tunables.
    #[command(flatten)]
    pub settings: Settings,
}

/// Flags of `reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Everything `run` takes.
    #[command(flatten)]
    pub run: RunArgs,
    /// Post again where vetting was Denied (spends one of the customer's three vetting requests)
    #[arg(long)]
    pub retry_denied: bool,
}

/// Flags of `refresh`.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// An earlier results file
    #[arg(short, long, value_name = "FILE")]
    pub input: String,
    /// The refreshed results file (`-` for standard output); never overwritten without --force
    #[arg(short, long, value_name = "FILE")]
    pub output: String,
    /// Overwrite an existing output file
    #[arg(long)]
    pub force: bool,
    /// Run against a fresh in-process simulator holding only the sandbox's built-in customers
    #[arg(long)]
    pub sandbox: bool,
    /// TOML settings file (flags and environment win over it)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write Prometheus metrics here at the end (node_exporter textfile format)
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Tunables.
    #[command(flatten)]
    pub settings: Settings,
}

/// Flags of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Input CSV (`-` for standard input)
    #[arg(short, long, value_name = "FILE")]
    pub input: String,
    /// TOML settings file (for api_contract, education_segment, validation_code)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Tunables (only the validation ones matter here).
    #[command(flatten)]
    pub settings: Settings,
}

/// Flags of `simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Address to listen on (port 0 picks a free one)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Delay added to every API answer, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Lifetime of issued access tokens, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub token_ttl: u64,
    /// Fraction of API requests that fail (half 503, half dropped connections)
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    pub fault_rate: f64,
    /// The partner's quota: API requests per second allowed before 429s (0 = never throttle)
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Requests the quota admits at once [default: one second's worth]
    #[arg(long, value_name = "N")]
    pub throttle_burst: Option<u32>,
    /// Change the quota's rate AFTER seconds from the start, e.g. `20:6`; repeatable
    #[arg(long, value_name = "AFTER:RATE")]
    pub throttle_change: Vec<String>,
    /// Retry-After seconds sent with throttling 429s
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub retry_after: u64,
    /// Seed for faults, throttling and vetting decisions
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CSV of customers' existing state (customer_id,qualification,vetting_status,vetting_reason,vetting_create_date); replaces the built-in sandbox customers
    #[arg(long, value_name = "FILE")]
    pub preload: Option<PathBuf>,
    /// Scripted answers per customer: lines `CUSTOMER_ID 503|429:SECS|drop|delay:MSms|late:MSms`
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// Seconds before a created qualification's vetting leaves InReview
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub vetting_secs: u64,
    /// Fraction of created qualifications whose vetting ends Denied
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    pub deny_rate: f64,
    /// Reject the 2021 request contract, as the service will once 2022 is mandatory
    #[arg(long)]
    pub require_2022: bool,
    /// Do not keep a log of received requests (for benchmarks)
    #[arg(long)]
    pub no_record: bool,
}

/// Sets up tracing on stderr as the flags ask.
pub fn init_logging(log: &LogArgs) {
    let filter = match (log.quiet, log.verbose) {
        (true, _) => "error",
        // Text logs leave out the per-row lines (the results file has them); JSON keeps them.
        (false, 0) if log.log_format == LogFormat::Text => {
            "pc_qualify=info,pc_qualify::rows=warn,warn"
        }
        (false, 0) => "pc_qualify=info,warn",
        (false, 1) => "pc_qualify=debug,warn",
        (false, 2) => "pc_qualify=trace,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::new(filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::progress::LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match log.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Runs the parsed command line and returns the exit code.
pub async fn dispatch(cli: Cli) -> Result<ExitCode, ErrorKind> {
    // With JSON logs stderr is for machines: the summary becomes a log event.
    let json = cli.log.log_format == LogFormat::Json;
    let quiet = cli.log.quiet || json;
    match cli.command {
        Command::Run(args) => work(args, Mode::Run, quiet, json).await,
        Command::Reconcile(args) => {
            let mode = Mode::Reconcile {
                retry_denied: args.retry_denied,
            };
            work(args.run, mode, quiet, json).await
        }
        Command::Refresh(args) => refresh(args, quiet, json).await,
        Command::Validate(args) => validate(args),
        Command::Simulate(args) => simulate(args).await,
        Command::Completions { shell } => {
            use std::io::Write as _;
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "pc-qualify", &mut script);
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ErrorKind::BrokenPipe),
                Err(e) => Err(ErrorKind::Output {
                    path: "-".into(),
                    reason: e.to_string(),
                }),
                Ok(()) => Ok(ExitCode::Success),
            }
        }
    }
}

fn load_settings(config: Option<&Path>, flags: Settings) -> Result<RunConfig, ErrorKind> {
    let file = match config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    RunConfig::from_settings(flags.or(file))
}

/// `run` and `reconcile`.
async fn work(args: RunArgs, mode: Mode, quiet: bool, json: bool) -> Result<ExitCode, ErrorKind> {
    let mut config = load_settings(args.config.as_deref(), args.settings.clone())?;
    let needs_credentials = !(args.dry_run && mode == Mode::Run && !config.validation_code_auto);
    // Held for the whole run: dropping it stops the in-process simulator.
    let (sandbox, credentials) = if args.sandbox || needs_credentials {
        let (sandbox, credentials) = credentials(args.sandbox, &mut config).await?;
        (sandbox, Some(credentials))
    } else {
        // A dry run of `run` sends nothing, so it needs no credentials.
        (None, None)
    };
    let stop = Stop::default();
    let signals = tokio::spawn(forward_signals(stop.clone()));
    let stats = Arc::new(Stats::default());
    let throttle = Arc::new(Throttle::new(config.rate, config.burst));
    let show_progress =
        !quiet && !args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let total = if show_progress {
        progress::count_input(&args.input)
    } else {
        None
    };
    let pace = throttle.clone();
    let paused: progress::PausedFn = {
        let throttle = throttle.clone();
        Arc::new(move || progress::Pace {
            paused: throttle.is_paused(),
            rate: throttle.current_rate(),
        })
    };
    let progress = Progress::start(show_progress, total, stats.clone(), paused);
    let started = std::time::SystemTime::now();
    let report = pipeline::execute(
        Job {
            input: args.input.clone(),
            output: args.output.clone(),
            force: args.force,
            resume: args.resume,
            dry_run: args.dry_run,
            mode,
            config,
            credentials,
            stats,
            throttle,
        },
        stop,
    )
    .await;
    // The bar goes before anything else is printed, or the summary would tear it.
    progress.finish();
    signals.abort();
    if let Some(handle) = sandbox {
        handle.shutdown().await;
    }
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            // A nightly job that cannot start still tells the scheduler it failed.
            if let Some(path) = &args.metrics {
                write_metrics(
                    path,
                    mode_name(mode),
                    &Stats::default(),
                    false,
                    0,
                    None,
                    started,
                );
            }
            return Err(err);
        }
    };
    if let Some(error) = &report.input_error {
        tracing::error!("{error}");
    }
    let rate = pace.figures();
    if json {
        log_summary(&report, rate.as_ref());
    }
    if let Some(path) = &args.metrics {
        write_metrics(
            path,
            mode_name(mode),
            &report.stats,
            report.exit_code() == ExitCode::Success,
            report.pauses,
            rate,
            started,
        );
    }
    if !quiet {
        if let Some(example) = &report.example_request {
            eprintln!("pc-qualify: dry run; the first row would be sent as:\n\n{example}");
        }
        eprint!("{}", summary(&report, &args, rate.as_ref()));
    }
    Ok(report.exit_code())
}

/// The sandbox's simulator and credentials, or the credentials from the environment.
async fn credentials(
    sandbox: bool,
    config: &mut RunConfig,
) -> Result<(Option<simulator::SimHandle>, Credentials), ErrorKind> {
    if !sandbox {
        return Ok((None, credentials_from_env(&config.authority)?));
    }
    let handle = simulator::start(SimConfig::sandbox(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| ErrorKind::Sandbox(e.to_string()))?;
    config.base_url = handle.base_url();
    config.authority = handle.base_url();
    tracing::info!(url = %handle.base_url(), "sandbox: simulator started");
    let credentials = Credentials::Refresh(RefreshCredentials {
        authority: config.authority.clone(),
        tenant: simulator::SANDBOX_TENANT.to_string(),
        client_id: simulator::SANDBOX_CLIENT_ID.to_string(),
        client_secret: SecretString::from(simulator::SANDBOX_CLIENT_SECRET.to_string()),
        refresh_token: SecretString::from(simulator::SANDBOX_REFRESH_TOKEN.to_string()),
        token_file: None,
    });
    Ok((Some(handle), credentials))
}

/// `refresh`.
async fn refresh(args: RefreshArgs, quiet: bool, json: bool) -> Result<ExitCode, ErrorKind> {
    let mut config = load_settings(args.config.as_deref(), args.settings.clone())?;
    let (sandbox, credentials) = credentials(args.sandbox, &mut config).await?;
    let stop = Stop::default();
    let signals = tokio::spawn(forward_signals(stop.clone()));
    let started = std::time::SystemTime::now();
    let report = crate::refresh::execute(
        crate::refresh::RefreshJob {
            input: args.input.clone(),
            output: args.output.clone(),
            force: args.force,
            config,
            credentials,
        },
        stop,
    )
    .await;
    signals.abort();
    if let Some(handle) = sandbox {
        handle.shutdown().await;
    }
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            if let Some(path) = &args.metrics {
                write_metrics(path, "refresh", &Stats::default(), false, 0, None, started);
            }
            return Err(err);
        }
    };
    if let Some(path) = &args.metrics {
        write_metrics(
            path,
            "refresh",
            &report.stats,
            report.exit_code() == ExitCode::Success,
            report.pauses,
            None,
            started,
        );
    }
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
    }
    Ok(report.exit_code())
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Run => "run",
        Mode::Reconcile { .. } => "reconcile",
    }
}

/// Writes the Prometheus textfile; a failed run keeps the last success time of the previous file.
/// A write failure is logged as an error but does not change the run's exit code: the rows
/// were processed, and a stale textfile is what the scheduler's alert on its age is for.
fn write_metrics(
    path: &Path,
    command: &str,
    stats: &Stats,
    success: bool,
    pauses: u64,
    rate: Option<crate::throttle::RateFigures>,
    started: std::time::SystemTime,
) {
    let facts = metrics::RunFacts {
        command,
        duration: started.elapsed().unwrap_or_default(),
        finished_at: std::time::SystemTime::now(),
        success,
        pauses,
        rate,
        previous_success: if success {
            None
        } else {
            metrics::previous_success(path)
        },
    };
    if let Err(err) = metrics::write_atomic(path, &metrics::render(stats, &facts)) {
        tracing::error!(path = %path.display(), error = %err, "metrics file not written");
    }
}

/// `validate`: every problem as `row N: field: reason`, then a total.
fn validate(args: ValidateArgs) -> Result<ExitCode, ErrorKind> {
    use std::io::Write as _;
    let config = load_settings(args.config.as_deref(), args.settings)?;
    if config.validation_code_auto {
        return Err(ErrorKind::Config(
            "validate works offline: --validation-code auto needs the service; give the code itself".into(),
        ));
    }
    let options = InputOptions {
        contract: config.contract,
        default_segment: config.default_segment,
        default_validation_code: config.default_validation_code,
    };
    let input_error = |reason: String| ErrorKind::Input {
        path: args.input.clone(),
        reason,
    };
    let source: Box<dyn std::io::Read> = if args.input == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&args.input).map_err(|e| input_error(e.to_string()))?)
    };
    let mut reader = InputReader::new(source, options).map_err(|e| input_error(e.to_string()))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut rows, mut invalid, mut duplicates) = (0u64, 0u64, 0u64);
    let pipe = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            ErrorKind::BrokenPipe
        } else {
            ErrorKind::Output {
                path: "-".into(),
                reason: e.to_string(),
            }
        }
    };
    while let Some(record) = reader.next_record() {
        rows += 1;
        match record.map_err(|e| input_error(e.to_string()))? {
            Record::Valid(_) => {}
            Record::Rejected(row) if row.outcome == Some(Outcome::Duplicate) => {
                duplicates += 1;
                writeln!(
                    out,
                    "row {}: duplicate: {} (it will not be sent twice)",
                    row.row,
                    row.error_message.as_deref().unwrap_or("")
                )
                .map_err(pipe)?;
            }
            Record::Rejected(row) => {
                invalid += 1;
                writeln!(
                    out,
                    "row {}: {}",
                    row.row,
                    row.error_message.as_deref().unwrap_or("invalid")
                )
                .map_err(pipe)?;
            }
        }
    }
    writeln!(
        out,
        "{rows} row(s): {} valid, {invalid} invalid, {duplicates} duplicate(s)",
        rows - invalid - duplicates
    )
    .map_err(pipe)?;
    out.flush().map_err(pipe)?;
    Ok(if invalid > 0 {
        ExitCode::RowsFailed
    } else {
        ExitCode::Success
    })
}

/// Turns SIGINT/SIGTERM into stop requests (the first drains, the second is urgent).
async fn forward_signals(stop: Stop) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            stop.request();
        }
    }
    #[cfg(not(unix))]
    loop {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        stop.request();
    }
}

fn summary(report: &Report, args: &RunArgs, pace: Option<&RateFigures>) -> String {
    use std::fmt::Write as _;
    let stats = &report.stats;
    let mut text = String::new();
    let secs = report.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        report.rows as f64 / secs
    } else {
        0.0
    };
    let where_to = if args.output == "-" {
        "standard output".to_string()
    } else {
        args.output.clone()
    };
    let carried = match report.carried_over {
        0 => String::new(),
        n => format!(" (+{n} carried over from the earlier run)"),
    };
    let _ = writeln!(
        text,
        "pc-qualify: {} rows in {secs:.1}s ({rate:.1} rows/s){carried}; results: {where_to}",
        report.rows
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
    let vetting: Vec<String> = stats
        .vetting()
        .iter()
        .filter(|(status, _)| status != "none")
        .map(|(status, n)| format!("{status} {n}"))
        .collect();
    if !vetting.is_empty() {
        let _ = writeln!(text, "  vetting: {}", vetting.join(", "));
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
        report.pauses
    );
    // A dry run sends nothing, so there is no rate to speak of.
    if let Some(pace) = pace.filter(|_| stats.requests() > 0) {
        let _ = writeln!(text, "  {}", rate_line(pace));
    }
    if let (Some(p50), Some(p95)) = (stats.latency_quantile(0.5), stats.latency_quantile(0.95)) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let _ = writeln!(
            text,
            "  latency: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            ms(p50),
            ms(p95),
            ms(stats.latency_max())
        );
    }
    if report.token_file_failed {
        let _ = writeln!(
            text,
            "  ERROR: the rotated refresh token could not be saved to PC_REFRESH_TOKEN_FILE (see the log above); fix the file's permissions before the token ages out"
        );
    }
    let failed = stats.outcome(Outcome::Failed) + stats.outcome(Outcome::Invalid);
    let resumable = args.output != "-" && args.input != "-";
    if report.interrupted && resumable {
        let _ = writeln!(
            text,
            "  interrupted; to finish the remaining rows run:\n    {}",
            resume_command()
        );
    } else if report.interrupted {
        let _ = writeln!(
            text,
            "  interrupted; rows not in the results were not finished (--resume needs files for --input and --output)"
        );
    } else if failed > 0 && resumable && !args.dry_run {
        let _ = writeln!(
            text,
            "  {failed} row(s) failed or were invalid (see error_code/error_message); after fixing the input, retry just those rows with:\n    {}",
            resume_command()
        );
    }
    text
}

/// The summary's rate line: what the pacer allowed, and how far 429s pushed it.
fn rate_line(rate: &RateFigures) -> String {
    let (last, min, max) = match (rate.last, rate.min, rate.max) {
        (Some(last), Some(min), Some(max)) => (last, min, max),
        // Unlimited and never throttled: nothing was paced.
        _ => return format!("rate: {}, never throttled", rate.mode.name()),
    };
    if min == max {
        return format!("rate: {}, {last:.1}/s throughout", rate.mode.name());
    }
    format!(
        "rate: {}, ended at {last:.1}/s (lowest {min:.1}/s, highest {max:.1}/s)",
        rate.mode.name()
    )
}

/// The summary as one structured event, for `--log-format json`.
fn log_summary(report: &Report, rate: Option<&RateFigures>) {
    let stats = &report.stats;
    tracing::info!(
        rows = report.rows,
        carried_over = report.carried_over,
        created = stats.outcome(Outcome::Created),
        exists = stats.outcome(Outcome::Exists),
        failed = stats.outcome(Outcome::Failed),
        invalid = stats.outcome(Outcome::Invalid),
        duplicate = stats.outcome(Outcome::Duplicate),
        planned = stats.outcome(Outcome::Planned),
        requests = stats.requests(),
        retries = stats.retries(),
        throttled = stats.throttled(),
        pauses = report.pauses,
        elapsed_s = report.elapsed.as_secs_f64(),
        interrupted = report.interrupted,
        token_file_failed = report.token_file_failed,
        rate_mode = rate.map(|r| r.mode.name()),
        rate_last = rate.and_then(|r| r.last),
        rate_min = rate.and_then(|r| r.min),
        rate_max = rate.and_then(|r| r.max),
        "run finished"
    );
}

/// This process's own command line with `--resume` in place of `--force`, quoted for a POSIX shell.
fn resume_command() -> String {
    let mut args: Vec<String> = std::env::args()
        .filter(|a| a != "--force" && a != "--resume")
        .collect();
    if let Some(first) = args.first_mut() {
        *first = "pc-qualify".to_string();
    }
    // Right after the subcommand, whatever global flags stand before it.
    let at = args
        .iter()
        .position(|a| a == "run" || a == "reconcile")
        .map_or(args.len().min(2), |i| i + 1);
    args.insert(at, "--resume".to_string());
    args.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// `pc-qualify simulate`: serve until interrupted.
async fn simulate(args: SimulateArgs) -> Result<ExitCode, ErrorKind> {
    let mut config = SimConfig::sandbox();
    let bad = |msg: String| ErrorKind::Config(msg);
    for (name, value) in [
        ("--fault-rate", args.fault_rate),
        ("--deny-rate", args.deny_rate),
    ] {
        if !(0.0..=1.0).contains(&value) {
            return Err(bad(format!("{name} must be between 0 and 1; got {value}")));
        }
    }
    if !args.throttle_rate.is_finite() || args.throttle_rate < 0.0 {
        return Err(bad(format!(
            "--throttle-rate must be 0 or more; got {}",
            args.throttle_rate
        )));
    }
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|e| ErrorKind::Input {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    };
    if let Some(path) = &args.preload {
        config.preload = simulator::parse_preload(&read(path)?).map_err(|e| ErrorKind::Input {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    if let Some(path) = &args.script {
        config.script = simulator::parse_script(&read(path)?).map_err(|e| ErrorKind::Input {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    config.latency = Duration::from_millis(args.latency_ms);
    config.token_ttl = Duration::from_secs(args.token_ttl.max(1));
    config.fault_rate = args.fault_rate;
    config.throttle_rate = args.throttle_rate;
    config.throttle_burst = args.throttle_burst;
    config.throttle_changes = args
        .throttle_change
        .iter()
        .map(|text| simulator::parse_throttle_change(text))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("--throttle-change {e}")))?;
    config.retry_after_secs = args.retry_after;
    config.seed = args.seed;
    config.vetting_delay = Duration::from_secs(args.vetting_secs);
    config.deny_rate = args.deny_rate;
    config.require_2022 = args.require_2022;
    config.record = !args.no_record;
    let handle = simulator::start(config, args.listen)
        .await
        .map_err(|e| ErrorKind::Sandbox(e.to_string()))?;
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
