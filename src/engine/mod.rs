//! The jobs and the one engine they run on: run/reconcile ([`pipeline`]), [`refresh`] and
//! [`export`] feed a worker [`pool`] whose single writer records one results row per input row;
//! [`decide`] is what one row means for one job; [`preflight`] reads what a run needs before the
//! first row; [`config`] is the validated settings a job runs with.

pub mod config;
pub(crate) mod decide;
pub(crate) mod export;
pub(crate) mod pipeline;
pub(crate) mod pool;
pub(crate) mod preflight;
pub(crate) mod refresh;
pub(crate) mod unwind;
