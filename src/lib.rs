//! pc-qualify: set Microsoft Partner Center customer qualifications in bulk.
//!
//! The pipeline, in file order: [`input`] streams and validates rows, [`pipeline`] feeds them to a
//! worker pool that sends each through [`client`] (paced by [`throttle`], retried per [`retry`],
//! authenticated by [`auth`], speaking [`api`]), and [`output`] writes one results row per input row.

pub(crate) mod api;
pub(crate) mod atomic;
pub(crate) mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub(crate) mod customers;
pub(crate) mod decide;
pub(crate) mod dedup;
pub mod error;
pub(crate) mod exclusive;
pub(crate) mod export;
pub(crate) mod fatal;
pub mod input;
pub(crate) mod lock;
pub(crate) mod login;
pub(crate) mod metrics;
pub mod model;
pub mod output;
pub(crate) mod pacer;
pub(crate) mod pipeline;
pub(crate) mod pool;
pub(crate) mod preflight;
pub(crate) mod progress;
pub(crate) mod refresh;
pub(crate) mod report;
pub(crate) mod resume;
pub(crate) mod retry;
pub(crate) mod sheet;
#[cfg(feature = "sandbox")]
pub mod simulator;
pub mod source;
pub(crate) mod stats;
pub(crate) mod throttle;
pub(crate) mod unwind;
