//! The command layer's error, and the one place any error becomes an exit code.

use crate::domain::error::ExitCode;
use crate::engine::{JobError, JobReport};
use crate::input::InputFileError;
use crate::partner_center::PartnerCenterError;
use crate::results::ResultsError;

/// Everything that can stop a command before or outside the per-row flow: a job's error (which
/// carries the layers' below it) or the command layer's own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The job (or a layer below it) failed.
    #[error(transparent)]
    Job(#[from] JobError),
    /// The local sandbox (the in-process simulator) could not be started.
    #[cfg(feature = "sandbox")]
    #[error("sandbox")]
    SandboxStart(#[source] crate::simulator::SimError),
    /// A simulator input (`simulate --preload`, `--script`) is malformed.
    #[cfg(feature = "sandbox")]
    #[error("input {path}")]
    SimulatorInput {
        /// The file read.
        path: String,
        /// What the simulator's parser found.
        #[source]
        source: crate::simulator::SimError,
    },
    /// A `simulate --throttle-change` value is malformed (the parser's error, kept as the cause).
    #[cfg(feature = "sandbox")]
    #[error("configuration: --throttle-change {0}")]
    ThrottleChange(#[source] crate::simulator::RateChangeError),
}

/// The layers' errors reach the command layer inside the job's (sign-in's inside the service's
/// first), so that one mapping sees them.
macro_rules! through {
    ($($error:ty => $via:ty),*) => {$(
        impl From<$error> for CliError {
            fn from(error: $error) -> Self {
                CliError::from(<$via>::from(error))
            }
        }
    )*};
}
through!(InputFileError => JobError, ResultsError => JobError, PartnerCenterError => JobError);
through!(crate::partner_center::login::LoginError => PartnerCenterError);

impl CliError {
    /// The exit code this error ends the process with.
    ///
    /// The one place errors become exit codes: every variant of every layer is named (no
    /// catch-all), so a new variant has to be placed here deliberately. The numbers are the
    /// documented contract (0, 1, 2, 130); whether rows were already sent is said by the message,
    /// not the number.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Job(job) => job_error_exit_code(job),
            // Nothing was sent: the run could not start.
            #[cfg(feature = "sandbox")]
            CliError::SandboxStart(_)
            | CliError::SimulatorInput { .. }
            | CliError::ThrottleChange(_) => ExitCode::Usage,
        }
    }
}

/// The exit code a job that ran ends the process with: the other half of the one mapping.
pub(crate) fn job_exit_code(report: &impl JobReport) -> ExitCode {
    let ending = report.ending();
    if ending.fatal.is_some() {
        ExitCode::STOPPED
    } else if ending.interrupted {
        ExitCode::Interrupted
    } else if ending.incomplete {
        ExitCode::RowsFailed
    } else {
        ExitCode::Success
    }
}

fn job_error_exit_code(error: &JobError) -> ExitCode {
    match error {
        JobError::Results(results) => results_exit_code(results),
        // Nothing was sent: the run could not start.
        JobError::Input(input) => input_exit_code(input),
        JobError::PartnerCenter(pc) => match **pc {
            PartnerCenterError::Config(_)
            | PartnerCenterError::Credentials(_)
            | PartnerCenterError::TokenFile { .. }
            | PartnerCenterError::Token(_)
            | PartnerCenterError::HttpClient(_)
            | PartnerCenterError::BadUrl { .. }
            | PartnerCenterError::Login(_) => ExitCode::Usage,
        },
        JobError::Config(_)
        | JobError::ConfigFile { .. }
        | JobError::ConfigFileIo { .. }
        | JobError::ConfigFileSyntax { .. }
        | JobError::Preflight(_)
        | JobError::ValidationCodes(_)
        | JobError::ExportResumeRead { .. } => ExitCode::Usage,
    }
}

fn input_exit_code(error: &InputFileError) -> ExitCode {
    match error {
        InputFileError::Input { .. }
        | InputFileError::InputIo { .. }
        | InputFileError::InputRead { .. }
        | InputFileError::InputSheet { .. }
        | InputFileError::InputBuffer { .. }
        | InputFileError::InputTask { .. } => ExitCode::Usage,
    }
}

fn results_exit_code(error: &ResultsError) -> ExitCode {
    match error {
        // A closed pipe on standard output is the reader's choice, not an error.
        ResultsError::BrokenPipe => ExitCode::Success,
        // Stopped for good after rows may have been sent; the message names `--resume`.
        ResultsError::OutputAfterSend { .. } => ExitCode::STOPPED,
        ResultsError::Input(input) => input_exit_code(input),
        ResultsError::Output { .. }
        | ResultsError::OutputIo { .. }
        | ResultsError::OpenElsewhere { .. }
        | ResultsError::OutputDir { .. }
        | ResultsError::ResultsInput { .. }
        | ResultsError::ResultsOutput { .. }
        | ResultsError::ResumeMismatch(_)
        | ResultsError::JournalIo { .. }
        | ResultsError::LockFile { .. }
        | ResultsError::Locked { .. }
        | ResultsError::SameFile { .. } => ExitCode::Usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::ChainExt;

    fn e(error: impl Into<CliError>) -> CliError {
        error.into()
    }

    #[test]
    fn the_message_carries_every_cause_once() {
        let login = PartnerCenterError::Login(crate::partner_center::login::LoginError::Declined {
            error: "access_denied".into(),
        });
        let text = login.chain();
        assert!(text.starts_with("login failed: "), "{text}");
        assert_eq!(text.matches("access_denied").count(), 1, "{text}");
    }

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied")
    }

    /// One row per variant: `exit_code` names every variant (no catch-all arm), and this table
    /// pins the number each one ends the process with.
    #[test]
    fn exit_codes_map_in_one_place() {
        let path = || "out.csv".to_string();
        #[allow(unused_mut)] // the sandbox's rows are added only with that feature
        let mut table: Vec<(CliError, u8)> = vec![
            (e(JobError::Config("x".into())), 2),
            (
                e(JobError::ConfigFile {
                    path: "c.toml".into(),
                    reason: "x".into(),
                }),
                2,
            ),
            (e(PartnerCenterError::Credentials("x".into())), 2),
            (e(PartnerCenterError::Token("x".into())), 2),
            (
                e(PartnerCenterError::TokenFile {
                    path: "token".into(),
                    source: io(),
                }),
                2,
            ),
            (
                e(InputFileError::Input {
                    path: path(),
                    reason: "x".into(),
                }),
                2,
            ),
            (
                e(ResultsError::Output {
                    path: path(),
                    reason: "x".into(),
                }),
                2,
            ),
            (e(ResultsError::ResumeMismatch("x".into())), 2),
            (e(JobError::Preflight("x".into())), 2),
            (
                e(JobError::ValidationCodes(
                    crate::partner_center::api::ValidationsError::NotAList,
                )),
                2,
            ),
            (
                e(PartnerCenterError::Login(
                    crate::partner_center::login::LoginError::Declined {
                        error: "access_denied".into(),
                    },
                )),
                2,
            ),
            (e(ResultsError::BrokenPipe), 0),
            (
                e(InputFileError::InputIo {
                    path: path(),
                    source: io(),
                }),
                2,
            ),
            (
                e(InputFileError::InputRead {
                    path: path(),
                    source: crate::input::InputError::Empty,
                }),
                2,
            ),
            (
                e(InputFileError::InputSheet {
                    path: path(),
                    source: crate::input::sheet::SheetError::NoSheets,
                }),
                2,
            ),
            (
                e(ResultsError::ResultsInput {
                    path: path(),
                    source: crate::results::output::ReadError::NotResults,
                }),
                2,
            ),
            (
                e(ResultsError::ResultsOutput {
                    path: path(),
                    source: crate::results::output::ReadError::NotResults,
                }),
                2,
            ),
            (
                e(ResultsError::OutputIo {
                    path: path(),
                    source: io(),
                }),
                2,
            ),
            (
                e(ResultsError::OpenElsewhere {
                    path: path(),
                    source: io(),
                }),
                2,
            ),
            (
                e(ResultsError::OutputAfterSend {
                    path: path(),
                    source: io(),
                }),
                2,
            ),
            (
                e(ResultsError::LockFile {
                    path: path(),
                    action: "lock",
                    lock: "out.csv.lock".into(),
                    source: io(),
                }),
                2,
            ),
            (
                e(InputFileError::InputBuffer {
                    path: "-".into(),
                    source: io(),
                }),
                2,
            ),
            (
                e(ResultsError::JournalIo {
                    path: path(),
                    source: io(),
                }),
                2,
            ),
            (
                e(ResultsError::Locked {
                    path: path(),
                    holder: "process 1".into(),
                    lock: "out.csv.lock".into(),
                }),
                2,
            ),
            (
                e(JobError::ConfigFileIo {
                    path: "c.toml".into(),
                    source: io(),
                }),
                2,
            ),
            (
                e(JobError::ConfigFileSyntax {
                    path: "c.toml".into(),
                    source: toml_error(),
                }),
                2,
            ),
            (e(PartnerCenterError::HttpClient(reqwest_error())), 2),
            (e(bad_url()), 2),
            (
                e(ResultsError::OutputDir {
                    path: path(),
                    dir: "d".into(),
                    source: io(),
                }),
                2,
            ),
            (
                e(InputFileError::InputTask {
                    path: path(),
                    what: "reading the input was cancelled",
                    source: join_error(),
                }),
                2,
            ),
            (
                e(JobError::ExportResumeRead {
                    path: path(),
                    source: csv::Error::from(io()),
                }),
                2,
            ),
        ];
        #[cfg(feature = "sandbox")]
        table.extend([
            (e(CliError::SandboxStart(sim_error())), 2),
            (
                e(CliError::SimulatorInput {
                    path: path(),
                    source: sim_error(),
                }),
                2,
            ),
            (
                e(CliError::ThrottleChange(
                    crate::simulator::parse_throttle_change("x").expect_err("no colon"),
                )),
                2,
            ),
        ]);
        for (error, code) in &table {
            assert_eq!(error.exit_code() as u8, *code, "{error:?}");
        }
        // Each variant once: a new variant gets a row here as well as an arm in exit_code.
        let mut names: Vec<String> = table
            .iter()
            .map(|(e, _)| {
                // The innermost variant's name: `Job(Results(Locked { .. }))` is `Locked`.
                let mut debug = format!("{e:?}");
                for wrapper in ["Job(", "Results(", "Input(", "PartnerCenter("] {
                    if let Some(inner) = debug.strip_prefix(wrapper) {
                        debug = inner.to_string();
                    }
                }
                let end = debug.find([' ', '(', '{']).unwrap_or(debug.len());
                debug[..end].to_string()
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), table.len());
    }

    fn toml_error() -> crate::engine::config::TomlError {
        crate::engine::config::TomlError::from(
            toml::from_str::<toml::Table>("a = ").expect_err("no value"),
        )
    }

    fn reqwest_error() -> reqwest::Error {
        let client =
            crate::partner_center::client::http_client(std::time::Duration::from_secs(1), 1, true)
                .expect("client");
        client.get("::").build().expect_err("not a URL")
    }

    fn bad_url() -> PartnerCenterError {
        PartnerCenterError::BadUrl {
            what: "--base-url".into(),
            text: "::".into(),
            source: url::Url::parse("::").expect_err("not a URL"),
        }
    }

    /// A cancelled task's error, as `tokio::task::JoinError` can only be made by a runtime.
    fn join_error() -> tokio::task::JoinError {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let task = tokio::spawn(std::future::pending::<()>());
            task.abort();
            task.await.expect_err("aborted")
        })
    }

    #[cfg(feature = "sandbox")]
    fn sim_error() -> crate::simulator::SimError {
        crate::simulator::SimError::Bind {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            source: io(),
        }
    }

    /// The variants that replaced a cause flattened into a `String`: the cause is kept as the
    /// error's source, and the printed line is the one the flattened text gave.
    #[test]
    fn causes_once_flattened_into_text_are_kept_as_sources() {
        use std::error::Error as _;
        let cases: Vec<(CliError, &str)> = vec![
            (
                e(JobError::ConfigFileIo {
                    path: "c.toml".into(),
                    source: io(),
                }),
                "config file c.toml: permission denied",
            ),
            (
                e(ResultsError::OutputDir {
                    path: "d/out.csv".into(),
                    dir: "d".into(),
                    source: io(),
                }),
                "output d/out.csv: directory d: permission denied",
            ),
            (
                e(JobError::ExportResumeRead {
                    path: "e.csv".into(),
                    source: csv::Error::from(io()),
                }),
                "input e.csv: --resume: permission denied",
            ),
            (
                e(bad_url()),
                "configuration: --base-url: \"::\" is not a URL (relative URL without a base)",
            ),
        ];
        for (error, text) in &cases {
            assert!(error.source().is_some(), "{error:?}");
            assert_eq!(error.chain(), *text);
        }

        // The TOML parser's one-line message, not its multi-line excerpt of the file.
        let syntax = JobError::ConfigFileSyntax {
            path: "c.toml".into(),
            source: toml_error(),
        };
        let cause = syntax.source().expect("kept");
        let toml = cause
            .downcast_ref::<crate::engine::config::TomlError>()
            .expect("the parser's error");
        assert_eq!(
            syntax.chain(),
            format!("config file c.toml: {}", toml.message)
        );
        assert!(!syntax.chain().contains('\n'), "{}", syntax.chain());

        let client = PartnerCenterError::HttpClient(reqwest_error());
        assert!(client.source().is_some());
        let text = client.chain();
        assert!(
            text.starts_with("configuration: HTTP client: builder error"),
            "{text}"
        );

        let task = InputFileError::InputTask {
            path: "in.csv".into(),
            what: "reading the input was cancelled",
            source: join_error(),
        };
        assert!(task.source().is_some());
        let text = task.chain();
        assert!(
            text.starts_with("input in.csv: reading the input was cancelled: task "),
            "{text}"
        );
        assert!(text.ends_with("was cancelled"), "{text}");
    }

    #[cfg(feature = "sandbox")]
    #[test]
    fn the_simulators_errors_are_kept_as_sources() {
        use std::error::Error as _;
        let start = CliError::SandboxStart(sim_error());
        assert!(start.source().is_some());
        // `SimError::Bind` prints its own cause; it is not repeated.
        assert_eq!(
            start.chain(),
            "sandbox: simulator cannot listen on 127.0.0.1:8080: permission denied"
        );
        let preload = CliError::SimulatorInput {
            path: "p.csv".into(),
            source: crate::simulator::SimError::Preload {
                line: 2,
                reason: "bad".into(),
            },
        };
        assert!(preload.source().is_some());
        assert_eq!(preload.chain(), "input p.csv: preload line 2: bad");
        let change = CliError::ThrottleChange(
            crate::simulator::parse_throttle_change("x:6").expect_err("not a number"),
        );
        assert!(change.source().is_some());
        // The float parser's reason, kept by the simulator's error, now reaches the line too.
        assert_eq!(
            change.chain(),
            "configuration: --throttle-change \"x:6\": the time must be 0 or more seconds: invalid float literal"
        );
    }

    #[test]
    fn a_kept_cause_is_printed_once_after_its_context() {
        let err = ResultsError::OutputIo {
            path: "out.csv".into(),
            source: io(),
        };
        assert_eq!(err.chain(), "output out.csv: permission denied");
        let after = ResultsError::OutputAfterSend {
            path: "out.csv".into(),
            source: io(),
        };
        let text = after.chain();
        assert!(
            text.starts_with("output out.csv: requests were sent"),
            "{text}"
        );
        assert!(text.contains("--resume"), "{text}");
        assert_eq!(text.matches("permission denied").count(), 1, "{text}");
        let bad_row = ResultsError::ResultsInput {
            path: "old.csv".into(),
            source: crate::results::output::ReadError::BadRow {
                line: 3,
                source: crate::results::output::ResultsRowError::NotANumber {
                    field: "attempts",
                    value: "x".into(),
                },
            },
        };
        assert_eq!(
            bad_row.chain(),
            "input old.csv: line 3: attempts is not a number: \"x\""
        );
        let empty = InputFileError::InputRead {
            path: "in.csv".into(),
            source: crate::input::InputError::Empty,
        };
        assert_eq!(
            empty.chain(),
            "input in.csv: the file is empty (no header row)"
        );
    }
}
