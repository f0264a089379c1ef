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
pub(crate) mod customers;
pub mod dedup;
pub mod error;
mod exclusive;
pub(crate) mod export;
pub mod fatal;
pub mod input;
pub(crate) mod lock;
pub mod login;
pub mod metrics;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod preflight;
pub mod progress;
pub mod refresh;
pub(crate) mod report;
pub mod resume;
pub mod retry;
pub mod sheet;
pub mod simulator;
pub mod source;
pub mod stats;
pub mod throttle;
pub(crate) mod unwind;
pub mod worker;
