//! Integration tests: the real binary against the in-process simulator. One crate, so it links once.

mod cli;
mod common;
mod errors;
mod export;
mod faults;
mod faults2;
mod first_contact;
mod formats;
mod login;
mod outputs;
mod pacing;
mod prop;
mod reconcile;
mod report;
mod results_schema;
mod review;
mod run;
mod streams;
mod tls;
