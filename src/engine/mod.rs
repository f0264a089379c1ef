//! The jobs and the one engine they run on: run/reconcile ([`pipeline`]), [`refresh`] and
//! [`export`] feed a worker [`pool`] whose single writer records one results row per input row;
//! [`decide`] is what one row means for one job; [`preflight`] reads what a run needs before the
//! first row; [`config`] is the validated settings a job runs with.

mod error;
pub use error::JobError;

pub mod config;
pub(crate) mod decide;
pub(crate) mod export;
pub(crate) mod pipeline;
pub(crate) mod pool;
pub(crate) mod preflight;
pub(crate) mod refresh;
pub(crate) mod unwind;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::stats::Stats;
use crate::domain::stop::Stop;
use crate::engine::config::RunConfig;
use crate::partner_center::auth::{Credentials, TokenProvider};
use crate::partner_center::client::Client;
use crate::partner_center::fatal::{Cause, FatalStop};
use crate::partner_center::throttle::Throttle;

/// What every job is handed by the command that starts it: where it writes, its settings, and
/// what the command shares with it (counters for the progress bar, the pacer, the stop request).
pub struct JobContext {
    /// Where the job writes (`-` for standard output).
    pub output: String,
    /// Replace an existing output file.
    pub force: bool,
    /// The validated settings.
    pub config: RunConfig,
    /// The run's counters, shared with the progress bar and the summary.
    pub stats: Arc<Stats>,
    /// The pacer every call of the job goes through.
    pub throttle: Arc<Throttle>,
    /// Asked to stop by a signal.
    pub stop: Stop,
}

impl JobContext {
    /// What a job owns from here: (output, force, config, stats, throttle, stop).
    fn into_parts(self) -> (String, bool, RunConfig, Arc<Stats>, Arc<Throttle>, Stop) {
        let JobContext {
            output,
            force,
            config,
            stats,
            throttle,
            stop,
        } = self;
        (output, force, config, stats, throttle, stop)
    }
}

/// Signs a job in: the client every call goes through, which stops the whole run through the
/// returned [`FatalStop`] (MFA, token endpoint down, outage). Credentials are proven here,
/// before the results file is touched or any row is sent.
pub(crate) async fn connect(
    config: &RunConfig,
    credentials: Credentials,
    throttle: &Arc<Throttle>,
    stats: &Arc<Stats>,
    fatal: &Arc<FatalStop>,
) -> Result<(Arc<Client>, Arc<TokenProvider>), JobError> {
    let (client, tokens) = Client::connect(
        &config.endpoint(),
        credentials,
        throttle.clone(),
        stats.clone(),
        fatal.clone(),
    )
    .await?;
    Ok((Arc::new(client), tokens))
}

/// How a job ended, whatever it did: what every job's report carries for the one end-of-run
/// path (summary, metrics, exit code).
pub struct Ending {
    /// The run's counters.
    pub stats: Arc<Stats>,
    /// Wall time of the job proper (from the first row).
    pub elapsed: Duration,
    /// A stop signal ended the job early.
    pub interrupted: bool,
    /// Pool-wide pauses after 429s.
    pub pauses: u64,
    /// Why the job was stopped for good (MFA, token endpoint, outage), if it was.
    pub fatal: Option<Cause>,
    /// Some rows or customers did not end as asked: failed, invalid, unread, a list cut short.
    pub incomplete: bool,
}

impl Ending {
    /// The ending, with the pauses the throttle counted.
    pub(crate) fn read(
        stats: Arc<Stats>,
        throttle: &Throttle,
        (interrupted, incomplete): (bool, bool),
        elapsed: Duration,
        fatal: Option<Cause>,
    ) -> Ending {
        Ending {
            stats,
            elapsed,
            interrupted,
            incomplete,
            pauses: throttle.pauses(),
            fatal,
        }
    }
}

/// A job's report, as the end-of-run path reads it.
pub trait JobReport {
    /// How the job ended.
    fn ending(&self) -> &Ending;
}

macro_rules! job_reports {
    ($($report:ty),*) => {$(
        impl JobReport for $report {
            fn ending(&self) -> &Ending {
                &self.ending
            }
        }
    )*};
}
job_reports!(
    pipeline::Report,
    refresh::RefreshReport,
    export::ExportReport
);
