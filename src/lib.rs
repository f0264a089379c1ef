//! pc-qualify: set Microsoft Partner Center customer qualifications in bulk.
//!
//! The pipeline, in file order: [`input`] streams and validates rows, [`pipeline`] feeds them to a
//! worker pool that sends each through [`client`] (paced by [`throttle`], retried per [`retry`],
//! authenticated by [`auth`], speaking [`api`]), and [`output`] writes one results row per input row.

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod dedup;
pub mod error;
pub mod input;
pub mod metrics;
pub mod model;
pub mod output;
pub(crate) mod pacer;
pub mod pipeline;
pub mod preflight;
pub mod progress;
pub mod refresh;
pub mod resume;
pub mod retry;
pub mod simulator;
pub mod stats;
pub mod throttle;
pub mod worker;
