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

use crate::domain::stats::Stats;
use crate::partner_center::fatal::Cause;

/// How a job ended, whatever it did: the figures the one end-of-run path (summary, metrics,
/// exit code) reads from every job's report.
pub struct JobEnd<'a> {
    /// The run's counters.
    pub stats: &'a Stats,
    /// Pool-wide pauses after 429s.
    pub pauses: u64,
    /// A stop signal ended the job early.
    pub interrupted: bool,
    /// The job was stopped for good (MFA, token endpoint, outage).
    pub stopped: Option<&'a Cause>,
    /// Some rows or customers did not end as asked: failed, invalid, unread, or a list cut short.
    pub incomplete: bool,
}

/// A job's report, as the end-of-run path reads it.
pub trait JobReport {
    /// How the job ended.
    fn end(&self) -> JobEnd<'_>;
}
