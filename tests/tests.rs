//! Integration tests: the real binary against the in-process simulator. One crate, so it links once.

mod cli;
mod common;
mod faults;
mod pacing;
mod reconcile;
mod run;
