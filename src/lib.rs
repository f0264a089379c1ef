//! pc-qualify: set Microsoft Partner Center customer qualifications in bulk.
//!
//! Layers, top to bottom; a module uses only what stands below it (`docs/architecture.md`):
//!
//! - [`cli`]: flags, one file per command, the summary, and the one map from errors to exit codes;
//! - [`engine`]: the jobs (run/reconcile, refresh, export) on one worker pool and writer;
//! - [`input`] (rows in) and [`results`] (results out: schema, writer, reader, resume, lock,
//!   report, metrics);
//! - [`partner_center`]: the service's wire shapes, the client with its pacing and retries,
//!   sign-in;
//! - [`domain`]: the shared vocabulary (qualifications, rows, outcomes, counters, file primitives).
//!
//! [`simulator`] stands beside them: the local stand-in for Partner Center, built on `domain` and
//! `partner_center`'s wire shapes.

pub mod cli;
pub mod domain;
pub mod engine;
pub mod input;
pub mod partner_center;
pub mod results;
#[cfg(feature = "sandbox")]
pub mod simulator;
