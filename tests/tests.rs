//! Integration tests: the real binary against the in-process simulator. One crate, so it links once.
//!
//! Files are named for the behaviour they test; put a new test where a reader looking for that
//! behaviour would look, and a regression test beside its subject, named for the bug it guards.
//!
//! - `cli`: help texts (insta snapshots), completions, `validate`, the dry run, `simulate`, the
//!   progress bar on a terminal.
//! - `run`: `run` end to end (the sandbox sample, usage errors, the sandbox bypassing proxies).
//! - `input`: what is read: file formats, encodings, workbooks, standard input, garbage rows.
//! - `api_contract`: the requests sent (2022 and 2021 contracts) and every answer shape read.
//! - `faults`: one call against a misbehaving service: retries, timeouts, cut or odd answers.
//! - `throttling`: 429 pauses, Retry-After, --rate and --rate auto.
//! - `auth`: tokens for a run: renewal, static tokens, public clients, the rotated token file.
//! - `stops`: run-wide stops (token endpoint down, the breaker, MFA) and the --resume after them.
//! - `resume`: --resume after a crash, after failed rows, against another input.
//! - `results_schema`: results files as spreadsheets leave them (separators, BOM, CRLF, moved or
//!   extra columns) read by refresh, report and --resume.
//! - `signals`: SIGINT/TERM/HUP/QUIT at each stage: drain, exit 130, resume.
//! - `path_roles`: one file in two roles (input, output, metrics, config, lock, journal) refused.
//! - `paths_and_files`: the results file's lock, devices, symlinks, the journal, unwritable outputs.
//! - `export`, `reconcile` (with refresh, logs and metrics), `validation_codes`, `login`,
//!   `report`: one command's behaviour each.
//! - `china_cloud`, `tls` (HTTPS and proxies), `secrets` (nothing leaks), `errors` (the error line).
//! - `properties`: proptest over random fault scripts: no row lost, nothing done twice.
//! - `windows`: what a partner admin on Windows does (quick start, resume, lock, a file open in
//!   Excel, the hint pasted into cmd.exe), run by `.ci/wine-tests` against the Windows build
//!   under Wine (`PCQ_TEST_BIN`, `PCQ_TEST_RUNNER`) as well as natively; `wine_only_` tests need Wine.
//!
//! Spawn the binary (`common::pcq`) when the subject is what an operator sees of the process:
//! exit codes, signals, stdout/stderr, files left behind, or the whole pipeline against the
//! simulator. Call the library in-process when none of that is the subject (the simulator's own
//! endpoints are tested with an HTTP client here; pure logic belongs in the unit tests in src/).
//! Before signalling a child, wait for a sign that it is at the point (`Running::wait_until`,
//! `Running::wait_for_*`, `wait_for_signal_handlers`: they fail at once if it ends first), never
//! a fixed sleep; the free `wait_until` only where no program of ours runs. A test that needs an
//! outside program goes through `common::outside_program`: skipped loudly outside CI, failed
//! under CI.
//! Timings belong in benches/: assertions here are on counts and orderings, with wide bounds
//! where a time is the subject (Retry-After, --rate).

mod api_contract;
mod auth;
mod china_cloud;
mod cli;
mod common;
mod errors;
mod export;
mod faults;
mod input;
mod login;
mod path_roles;
mod paths_and_files;
mod properties;
mod reconcile;
mod report;
mod request_ids;
mod results_schema;
mod resume;
mod run;
mod secrets;
mod signals;
mod stops;
mod throttling;
mod tls;
mod validation_codes;
mod windows;
