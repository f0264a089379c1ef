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
use std::time::{Duration, Instant};

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
    /// Stops the whole job for good (MFA, token endpoint down, outage); the client trips it.
    pub fatal: Arc<FatalStop>,
}

impl JobContext {
    /// Signs the job in: the client every call goes through. Credentials are proven here,
    /// before the results file is touched or any row is sent.
    pub(crate) async fn connect(
        &self,
        credentials: Credentials,
    ) -> Result<(Arc<Client>, Arc<TokenProvider>), JobError> {
        let (client, tokens) = Client::connect(
            &self.config.endpoint(),
            credentials,
            self.throttle.clone(),
            self.stats.clone(),
            self.fatal.clone(),
        )
        .await?;
        Ok((Arc::new(client), tokens))
    }

    /// Starts the job proper: the pacer measures the quota from here, not from before the
    /// sign-in and pre-flight, and so does the job's wall time.
    pub(crate) fn begin(&self) -> Instant {
        self.throttle.begin();
        Instant::now()
    }

    /// Waits for `work` (blocking input work, see `source::off_runtime`, or the first read of a
    /// list) unless a stop is requested first: then `None`. A stream that never ends (a producer
    /// that hangs, a terminal on standard input) must not hold a Ctrl-C back; a blocking thread
    /// is left in its read (the process does not wait for it on exit).
    pub(crate) async fn unless_stopped<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, JobError>>,
    ) -> Result<Option<T>, JobError> {
        tokio::select! {
            biased;
            () = self.stop.wait() => Ok(None),
            result = work => result.map(Some),
        }
    }

    /// How the job ended, `elapsed` after it began; `incomplete` as the job judges it.
    pub(crate) fn ending(&self, elapsed: Duration, incomplete: bool) -> Ending {
        Ending {
            stats: self.stats.clone(),
            elapsed,
            interrupted: self.stop.requested(),
            pauses: self.throttle.pauses(),
            fatal: self.fatal.cause().cloned(),
            incomplete,
        }
    }
}

/// How a job ended, whatever it did: what every job's report carries for the one end-of-run
/// path (summary, metrics, exit code).
#[derive(Default)]
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
