//! Integration tests: the real binary against the in-process simulator. One crate, so it links once.

mod cli;
mod common;
mod export;
mod faults;
mod first_contact;
mod login;
mod reconcile;
mod run;
mod tls;
