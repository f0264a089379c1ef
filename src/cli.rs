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
use crate::input::{InputOptions, Record};
use crate::metrics;
use crate::model::{Outcome, Qualification};
use crate::pipeline::{self, Job, Mode, Report, Stop};
use crate::progress::{self, Progress};
use crate::simulator::{self, SimConfig};
use crate::source::{InputFormat, InputSource};
use crate::stats::Stats;
use crate::throttle::Throttle;

/// The exit-code table, as a literal so that `concat!` can append it to each command's help.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0    every row created, exists, duplicate or planned
  1    the run finished and some rows failed or were invalid
  2    nothing was sent: usage, configuration, credentials, unreadable input, or the
       results file is in use by another run; or the run was stopped for good (MFA
       sign-in needed, token endpoint down, service outage): --resume finishes it
  130  interrupted (SIGINT/SIGTERM/SIGHUP/SIGQUIT)"
    };
}

const EXIT_CODES: &str = exit_codes!();

const RUN_HELP: &str = concat!(
    "\
Input: CSV (comma, semicolon, tab or pipe; UTF-8 or UTF-16 with BOM) or a workbook
(.xlsx, .xlsm, .xls, .ods; first sheet unless --sheet). See docs/input-formats.md.
Columns (header required; case, ' ', '-' and '_' ignored, so CustomerID = customer_id):
  customer_id        customer tenant GUID (aliases: customer_tenant_id, tenant_id, microsoft_id)
  qualification      Education, GovernmentCommunityCloud (GCC) or StateOwnedEntity
                     (alias: qualification_type)
  validation_code    GCC validation code, digits (alias: code)         [optional]
  education_segment  K12 or HigherEducation (alias: segment)           [optional]
  website            the school's website, Education only (alias: domain) [optional]

Credentials come from the environment only: PC_ACCESS_TOKEN, or PC_TENANT_ID,
PC_CLIENT_ID and PC_REFRESH_TOKEN (or PC_REFRESH_TOKEN_FILE, written by `pc-qualify
login`), plus PC_CLIENT_SECRET for a confidential client (a public client has none).

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
not a results file, the output is in use by another run (or usage/credentials), or the refresh
was stopped for good (MFA sign-in needed, token endpoint down, outage); 130 interrupted.

Examples:
  pc-qualify refresh --input results.csv --output refreshed.csv
  pc-qualify refresh --input nightly-results.csv --output - | grep Denied";

const EXPORT_HELP: &str = "\
Lists every customer of the partner (GET /v1/customers, page by page) and reads each one's
qualifications through the same rate-limited pool and retries as `run`. Nothing is posted.

Columns: customer_id,company_name,domain,qualification,vetting_status,vetting_reason,
vetting_create_date. One row per qualification held; one row with an empty qualification for
a customer holding none. With --qualification Q: only rows for Q, plus one row with an empty
qualification per customer lacking Q (the input of the next `reconcile`/`run`). A customer whose
qualifications cannot be read gets a row with empty vetting columns and an error in the summary.

With --resume an interrupted export is continued: the customers already in the file are kept
and not read again (the last one, which a crash may have cut short, is), and customers whose
qualifications could not be read are read again. The list itself is always read from the start.

Exit codes: 0 every customer listed and read; 1 some could not be read, or the list broke off;
2 usage, configuration, credentials, or the list cannot be read at all; 130 interrupted (the file
holds the customers finished so far; --resume finishes it).

Examples:
  pc-qualify export --sandbox --output customers.csv
  pc-qualify export --output - --qualification Education > education.csv
  pc-qualify export --output nightly-export.csv --force --metrics export.prom";

const VALIDATE_HELP: &str = "\
Prints each problem as `row N: field: reason`, then a total. Exits 0 when every row is valid,
1 when some are not, 2 when the file cannot be read or lacks a required column. Warnings
(`row N: warning: ...`, e.g. one customer with both an Education and a GovernmentCommunityCloud
row) are printed too but do not change the exit code.

Examples:
  pc-qualify validate --input samples/customers.csv
  pc-qualify validate --input schools.csv --education-segment K12
  pc-qualify validate --input gcc.csv --api-contract 2021";

const LOGIN_HELP: &str = "\
Signs in as a Partner Center user and writes the refresh token to the token file (replaced
atomically, readable by you only); the token is never printed. `run`, `reconcile` and `refresh`
then use it with PC_REFRESH_TOKEN_FILE, and write each renewed token back to the same file.

Default: authorization code with PKCE on http://localhost:PORT; the sign-in address is printed
on stderr and opened in the browser. --device-code: prints the service's message (address and
code to enter on any device) and polls until the sign-in is finished, declined or expired.
PC_CLIENT_SECRET is sent when set (confidential client), left out otherwise (public client).

Exit codes: 0 signed in and saved; 2 not signed in (declined, expired, refused, state mismatch,
missing settings, token file not writable); 130 interrupted.

Examples:
  pc-qualify login --tenant contoso.onmicrosoft.com --client-id \"$APP_ID\" --token-file ~/.pcq-token
  PC_REFRESH_TOKEN_FILE=~/.pcq-token pc-qualify login --device-code
  pc-qualify login --cloud china --device-code --token-file ~/.pcq-token-cn";
const REPORT_HELP: &str = "\
Reads a results file (of run, reconcile or refresh) and writes one self-contained HTML page:
outcome and vetting counts, attempts and time per row, HTTP statuses, and a sortable table of
the failed and invalid rows with their error. The page loads nothing from the network, so it
can be mailed or opened offline. An existing page is overwritten. Add #sort=COLUMN or
#sort=COLUMN:desc to the page's address to open it sorted.

Exit codes: 0 written; 2 the input is not a results file, or the page cannot be written.

Examples:
  pc-qualify report results.csv --html report.html
  pc-qualify report nightly-results.csv --html /srv/www/qualifications/latest.html
  pc-qualify report results.csv --html - > report.html";

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
  pc-qualify simulate --throttle-rate 10 --retry-after 2 --preload my-customers.csv";

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
    /// List every customer and the qualifications it holds, as CSV (never posts)
    #[command(after_long_help = EXPORT_HELP)]
    Export(ExportArgs),
    /// Sign in interactively and save the refresh token (browser, or --device-code)
    #[command(after_long_help = LOGIN_HELP)]
    Login(crate::login::LoginArgs),
    /// Check an input file without sending anything (no network, no credentials)
    #[command(after_long_help = VALIDATE_HELP)]
    Validate(ValidateArgs),
    /// Summarise a results file as one self-contained HTML page (charts and a sortable table)
    #[command(after_long_help = REPORT_HELP)]
    Report(ReportArgs),
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
    /// Input CSV or workbook (`-` for standard input)
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
    /// How to read the input.
    #[command(flatten)]
    pub format: InputFormat,
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

/// Flags of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The export CSV (`-` for standard output); never overwritten without --force
    #[arg(short, long, value_name = "FILE")]
    pub output: String,
    /// Overwrite an existing output file
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Continue an interrupted export: customers already in the file are not read again
    #[arg(long)]
    pub resume: bool,
    /// Only rows for this qualification, plus an empty-qualification row per customer lacking it
    #[arg(long, value_name = "QUALIFICATION", value_parser = parse_qualification)]
    pub qualification: Option<Qualification>,
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

fn parse_qualification(text: &str) -> Result<Qualification, String> {
    Qualification::parse(text).map_err(|e| e.to_string())
}

/// Flags of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Input CSV or workbook (`-` for standard input)
    #[arg(short, long, value_name = "FILE")]
    pub input: String,
    /// How to read the input.
    #[command(flatten)]
    pub format: InputFormat,
    /// TOML settings file (for api_contract, education_segment, validation_code)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Tunables (only the validation ones matter here).
    #[command(flatten)]
    pub settings: Settings,
}

/// Flags of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results file
    #[arg(value_name = "RESULTS")]
    pub results: PathBuf,
    /// Write the HTML page here (`-` for standard output)
    #[arg(long, value_name = "FILE")]
    pub html: String,
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
    /// API requests per second allowed before 429s (0 = never throttle)
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Retry-After seconds sent with throttling 429s
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub retry_after: u64,
    /// Seed for faults, throttling and vetting decisions
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CSV of customers' existing state (customer_id,qualification,vetting_status,vetting_reason,vetting_create_date[,company_name,domain]); replaces the built-in sandbox customers
    #[arg(long, value_name = "FILE")]
    pub preload: Option<PathBuf>,
    /// Scripted answers per customer: lines `CUSTOMER_ID 503|429:SECS|drop|delay:MSms|late:MSms|cut|slowbody:MSms|html|big:BYTES`
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
    /// Play this cloud's token resource: public or china
    #[arg(long, value_enum, value_name = "CLOUD", default_value = "public")]
    pub cloud: crate::config::Cloud,
    /// Play a public client app: token requests must carry no client_secret
    #[arg(long)]
    pub public_client: bool,
    /// Answers to device-code polls before sign-in completes, comma-separated: pending, slow_down, declined, access_denied, expired
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub device_polls: Vec<simulator::DevicePoll>,
    /// Polling interval the devicecode endpoint announces, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub device_interval: u64,
    /// Shape of create answers and qualification lists: bare, qualifications or pascal-items
    #[arg(long, value_name = "SHAPE", default_value = "bare")]
    pub answer_shape: simulator::AnswerShape,
    /// MFA-required mode: API requests after the first N get 401 with error code 900421
    #[arg(long, value_name = "N")]
    pub mfa_after: Option<u64>,
    /// Token endpoint outage: token requests after the first N get 503
    #[arg(long, value_name = "N")]
    pub token_outage_after: Option<u64>,
    /// `expires_in` figure sent with issued tokens instead of --token-ttl (to test absurd values)
    #[arg(long, value_name = "SECS")]
    pub token_expires_in: Option<u64>,
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
        Command::Export(args) => export(args, quiet, json).await,
        Command::Login(args) => login(args, quiet).await,
        Command::Validate(args) => validate(args),
        Command::Report(args) => {
            crate::report::execute(&args.results, &args.html)?;
            Ok(ExitCode::Success)
        }
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

/// `login`: sign in, save the refresh token; Ctrl-C ends it with 130 and nothing saved.
async fn login(args: crate::login::LoginArgs, quiet: bool) -> Result<ExitCode, ErrorKind> {
    let login = crate::login::Login::from_args(args)?;
    let stop = Stop::default();
    let signals = tokio::spawn(forward_signals(stop.clone()));
    let outcome = tokio::select! {
        result = login.run() => Some(result),
        _ = stop.wait() => None,
    };
    signals.abort();
    match outcome {
        None => {
            eprintln!("pc-qualify: login interrupted; nothing was saved");
            Ok(ExitCode::Interrupted)
        }
        Some(Err(err)) => Err(err.into()),
        Some(Ok(path)) => {
            if !quiet {
                eprintln!(
                    "pc-qualify: signed in; the refresh token is saved in {} (readable by you only).\n  Use it with: PC_REFRESH_TOKEN_FILE={} PC_TENANT_ID={} PC_CLIENT_ID={} pc-qualify run ...",
                    path.display(),
                    shell_quote(&path.display().to_string()),
                    shell_quote(&login.tenant),
                    shell_quote(&login.client_id),
                );
            }
            Ok(ExitCode::Success)
        }
    }
}

/// `run` and `reconcile`.
async fn work(args: RunArgs, mode: Mode, quiet: bool, json: bool) -> Result<ExitCode, ErrorKind> {
    let mut config = load_settings(args.config.as_deref(), args.settings.clone())?;
    // Opened once, before credentials: an unreadable input stops the run before any request.
    let source = InputSource::open_off_runtime(&args.input, &args.format).await?;
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
    let (source, total) = if show_progress {
        progress::count_input_off_runtime(source, &args.input).await?
    } else {
        (source, None)
    };
    let paused: progress::PausedFn = {
        let throttle = throttle.clone();
        Arc::new(move || throttle.is_paused())
    };
    let progress = Progress::start(show_progress, total, stats.clone(), paused);
    let started = std::time::SystemTime::now();
    let report = pipeline::execute(
        Job {
            input: args.input.clone(),
            source,
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
                write_metrics(path, mode_name(mode), &Stats::default(), false, 0, started);
            }
            return Err(err);
        }
    };
    if let Some(error) = &report.input_error {
        tracing::error!("{error}");
    }
    if json {
        log_summary(&report);
    }
    if let Some(path) = &args.metrics {
        write_metrics(
            path,
            mode_name(mode),
            &report.stats,
            report.exit_code() == ExitCode::Success,
            report.pauses,
            started,
        );
    }
    if !quiet {
        if let Some(example) = &report.example_request {
            eprintln!("pc-qualify: dry run; the first row would be sent as:\n\n{example}");
        }
        eprint!("{}", summary(&report, &args));
    }
    Ok(report.exit_code())
}

/// The sandbox's simulator and credentials, or the credentials from the environment.
async fn credentials(
    sandbox: bool,
    config: &mut RunConfig,
) -> Result<(Option<simulator::SimHandle>, Credentials), ErrorKind> {
    if !sandbox {
        return Ok((
            None,
            credentials_from_env(&config.authority, &config.resource)?,
        ));
    }
    // The sandbox plays the cloud asked for, so `--cloud china --sandbox` checks China's resource.
    let sim_config = SimConfig {
        cloud: config.cloud,
        ..SimConfig::sandbox()
    };
    let handle = simulator::start(sim_config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| ErrorKind::Sandbox(e.to_string()))?;
    config.base_url = handle.base_url();
    config.authority = handle.base_url();
    tracing::info!(url = %handle.base_url(), "sandbox: simulator started");
    let credentials = Credentials::Refresh(RefreshCredentials {
        authority: config.authority.clone(),
        tenant: simulator::SANDBOX_TENANT.to_string(),
        client_id: simulator::SANDBOX_CLIENT_ID.to_string(),
        client_secret: Some(SecretString::from(
            simulator::SANDBOX_CLIENT_SECRET.to_string(),
        )),
        resource: config.resource.clone(),
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
                write_metrics(path, "refresh", &Stats::default(), false, 0, started);
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

/// `export`.
async fn export(args: ExportArgs, quiet: bool, json: bool) -> Result<ExitCode, ErrorKind> {
    let mut config = load_settings(args.config.as_deref(), args.settings.clone())?;
    let (sandbox, credentials) = credentials(args.sandbox, &mut config).await?;
    let stop = Stop::default();
    let signals = tokio::spawn(forward_signals(stop.clone()));
    let started = std::time::SystemTime::now();
    let stats = Arc::new(Stats::default());
    let throttle = Arc::new(Throttle::new(config.rate, config.burst));
    let report = crate::export::execute(
        crate::export::ExportJob {
            output: args.output.clone(),
            force: args.force,
            resume: args.resume,
            qualification: args.qualification,
            config,
            credentials,
            stats,
            throttle,
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
                write_metrics(path, "export", &Stats::default(), false, 0, started);
            }
            return Err(err);
        }
    };
    if let Some(error) = &report.list_error {
        tracing::error!("{error}");
    }
    if let Some(path) = &args.metrics {
        write_metrics(
            path,
            "export",
            &report.stats,
            report.exit_code() == ExitCode::Success,
            report.pauses,
            started,
        );
    }
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
        eprint!("{}", export_summary(&report, &args.output));
    }
    Ok(report.exit_code())
}

fn export_summary(report: &crate::export::ExportReport, output: &str) -> String {
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
    started: std::time::SystemTime,
) {
    let facts = metrics::RunFacts {
        command,
        duration: started.elapsed().unwrap_or_default(),
        finished_at: std::time::SystemTime::now(),
        success,
        pauses,
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
    let mut source = InputSource::open(&args.input, &args.format)?;
    let mut reader = source.reader(options)?;
    if let Some(format) = source.format() {
        // On stderr: stdout is the list of problems, which scripts read.
        eprintln!("pc-qualify: reading {} as {format}", args.input);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut rows, mut invalid, mut duplicates, mut warnings) = (0u64, 0u64, 0u64, 0u64);
    let mut exclusive = crate::exclusive::ExclusiveCheck::default();
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
            Record::Valid(row) => {
                if let Some(warning) = exclusive.observe(&row) {
                    warnings += 1;
                    writeln!(out, "row {}: warning: {warning}", row.index).map_err(pipe)?;
                }
            }
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
    if warnings > 0 {
        // Warnings are advice, not invalid rows: they do not change the exit code.
        writeln!(
            out,
            "{warnings} warning(s); they do not make rows invalid or change the exit code"
        )
        .map_err(pipe)?;
    }
    out.flush().map_err(pipe)?;
    Ok(if invalid > 0 {
        ExitCode::RowsFailed
    } else {
        ExitCode::Success
    })
}

/// Turns SIGINT/SIGTERM (and SIGHUP, a closed terminal, and SIGQUIT) into stop requests (the
/// first drains, the second is urgent): left to their default, the last two would kill the
/// process without the summary, the journal check or exit 130.
async fn forward_signals(stop: Stop) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term), Ok(mut hup), Ok(mut quit)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::quit()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
                _ = quit.recv() => {}
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

fn summary(report: &Report, args: &RunArgs) -> String {
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
    if report.internal_errors > 0 {
        let _ = writeln!(
            text,
            "  ERROR: {} row(s) hit an internal error (error_code internal; please report it); the journal is kept so --resume re-sends them safely",
            report.internal_errors
        );
    }
    let failed = stats.outcome(Outcome::Failed) + stats.outcome(Outcome::Invalid);
    let resumable = args.output != "-" && args.input != "-";
    if let Some(cause) = &report.fatal {
        let _ = writeln!(text, "  STOPPED: {cause}");
        if resumable {
            let _ = writeln!(
                text,
                "  rows not in the results were not sent (or are journalled); to finish them run:\n    {}",
                resume_command()
            );
        }
    } else if report.interrupted && resumable {
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

/// The summary as one structured event, for `--log-format json`.
fn log_summary(report: &Report) {
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
        internal_errors = report.internal_errors,
        stopped = report
            .fatal
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
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
        let text = read(path)?;
        let bad_preload = |e: simulator::SimError| ErrorKind::Input {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        config.preload = simulator::parse_preload(&text).map_err(bad_preload)?;
        config.customers = simulator::parse_preload_profiles(&text).map_err(bad_preload)?;
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
    config.retry_after_secs = args.retry_after;
    config.seed = args.seed;
    config.vetting_delay = Duration::from_secs(args.vetting_secs);
    config.deny_rate = args.deny_rate;
    config.require_2022 = args.require_2022;
    config.record = !args.no_record;
    config.cloud = args.cloud;
    config.public_client = args.public_client;
    config.device_polls = args.device_polls;
    config.device_interval_secs = args.device_interval.clamp(1, 300);
    config.answer_shape = args.answer_shape;
    config.mfa_after = args.mfa_after;
    config.token_outage_after = args.token_outage_after;
    config.token_expires_in = args.token_expires_in;
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
