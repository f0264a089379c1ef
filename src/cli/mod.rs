//! The command line: flags ([`args`]), one file per command, the summary it prints ([`summary`]),
//! logging set-up, and dispatch. The library does the work; this module turns flags into jobs and
//! reports into text and exit codes.

#[cfg(feature = "sandbox")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
#[cfg(feature = "sandbox")]
use secrecy::SecretString;

use crate::cli::error::CliError;
use crate::domain::error::ExitCode;
use crate::domain::model::{Outcome, Qualification};
use crate::domain::stats::Stats;
use crate::engine::config::{InputSettings, RunConfig, Settings};
use crate::engine::pipeline::{self, Job, Mode, Report, Stop};
use crate::engine::{JobContext, JobError, JobReport};
use crate::input::source::{InputFormat, InputSource};
use crate::input::{InputFileError, InputOptions, Record};
#[cfg(feature = "sandbox")]
use crate::partner_center::auth::RefreshCredentials;
use crate::partner_center::auth::{credentials_from_env, Credentials};
use crate::partner_center::throttle::{RateFigures, Throttle};
use crate::results::metrics;
use crate::results::roles::{self, Role};
use crate::results::ResultsError;
#[cfg(feature = "sandbox")]
use crate::simulator::{self, SimConfig};
use progress::{Counting, Progress};

mod args;
pub mod error;
mod export;
mod login;
pub(crate) mod progress;
mod refresh;
mod run;
mod session;
mod signals;
#[cfg(feature = "sandbox")]
mod simulate;
mod summary;
mod validate;

pub use args::*;
use run::{credentials, work, Sandbox};
use session::Session;
use signals::forward_signals;
use summary::{shell_quote, Summary};

impl ServiceArgs {
    /// Whether to draw a progress bar: asked for, not quiet, and stderr is a terminal.
    fn shows_progress(&self, quiet: bool) -> bool {
        !quiet && !self.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr())
    }

    /// The settings: the flags (and environment) over the `--config` file over the defaults.
    fn run_config(&self) -> Result<RunConfig, CliError> {
        let file = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        Ok(RunConfig::from_settings(self.settings.clone().or(file))?)
    }
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
        .with_writer(crate::cli::progress::LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match log.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Runs the parsed command line and returns the exit code.
pub async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    // With JSON logs stderr is for machines: the summary becomes a log event.
    let json = cli.log.log_format == LogFormat::Json;
    let quiet = cli.log.quiet || json;
    match cli.command {
        Command::Run(args) => work(args, Mode::Run, quiet, json).await,
        Command::Reconcile(args) => {
            let retry_denied = args.retry_denied;
            work(args.run, Mode::Reconcile { retry_denied }, quiet, json).await
        }
        Command::Refresh(args) => refresh::refresh(args, quiet, json).await,
        Command::Export(args) => export::export(args, quiet, json).await,
        Command::Login(args) => login::login(args, quiet).await,
        Command::Validate(args) => validate::validate(args, cli.log.quiet, json),
        Command::Report(args) => {
            let mut named = vec![Role::new("RESULTS", &args.results)];
            named.extend(args.html.iter().map(|html| Role::new("--html", html)));
            named.extend(args.xlsx.iter().map(|xlsx| Role::new("--xlsx", xlsx)));
            roles::check(&named)?;
            if let Some(html) = &args.html {
                crate::results::report::execute(&args.results, html)?;
            }
            if let Some(xlsx) = &args.xlsx {
                crate::results::workbook::write(&args.results, xlsx)?;
            }
            Ok(ExitCode::Success)
        }
        #[cfg(feature = "sandbox")]
        Command::Simulate(args) => simulate::simulate(args).await,
        Command::Completions { shell } => {
            use std::io::Write as _;
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "pc-qualify", &mut script);
            let written = std::io::stdout().write_all(&script);
            written.map_err(|e| ResultsError::piped_io("-", e))?;
            Ok(ExitCode::Success)
        }
    }
}

/// Refuses a command whose files overlap (see [`roles::check`]): its `--input`, its `--output`
/// with the lock file and journal beside it, an `extra` file of its own, and the service flags.
/// `--metrics` and `--config`.
fn check_roles(
    input: Option<&str>,
    output: &str,
    extra: Option<Role>,
    service: &ServiceArgs,
) -> Result<(), CliError> {
    let mut named: Vec<Role> = input.map(|i| Role::new("--input", i)).into_iter().collect();
    named.extend(Role::results("--output", output));
    named.extend(extra);
    named.extend(service.metrics.iter().map(|m| Role::new("--metrics", m)));
    named.extend(service.config.iter().map(|c| Role::new("--config", c)));
    Ok(roles::check(&named)?)
}
