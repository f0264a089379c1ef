//! The library's error type and the process exit codes it maps to.

use std::path::PathBuf;

/// Everything that can stop a command before or outside the per-row flow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A flag, environment variable or config value is malformed or out of range.
    #[error("configuration: {0}")]
    Config(String),
    /// The config file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    ConfigFile {
        /// The file named by `--config`.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// No usable credentials were given.
    #[error("credentials: {0}")]
    Credentials(String),
    /// The refresh token file (`PC_REFRESH_TOKEN_FILE`) cannot be read.
    #[error("credentials: PC_REFRESH_TOKEN_FILE {}", path.display())]
    TokenFile {
        /// The file named.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The token endpoint refused or failed the refresh-token grant.
    #[error("token request failed: {0}")]
    Token(String),
    /// The input file cannot be opened or its header is unusable.
    #[error("input {path}: {reason}")]
    Input {
        /// The input path (`-` for standard input).
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The results file cannot be created, read or written.
    #[error("output {path}: {reason}")]
    Output {
        /// The results path (`-` for standard output).
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// `--resume` found results that do not belong to this input.
    #[error("resume: {0}")]
    ResumeMismatch(String),
    /// A pre-flight read against the service (validation codes, for example) failed or ruled the run out.
    #[error("pre-flight check: {0}")]
    Preflight(String),
    /// The validation codes answer (`--validation-code auto`) is unusable.
    #[error("pre-flight check")]
    ValidationCodes(#[source] crate::partner_center::api::ValidationsError),
    /// The local sandbox could not be started.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// `pc-qualify login` did not end with a saved refresh token.
    #[error("login failed")]
    Login(#[from] crate::partner_center::login::LoginError),
    /// Writing to standard output failed because the reader went away.
    #[error("broken pipe")]
    BrokenPipe,
    /// The input file could not be opened or read (an I/O error, kept as the cause).
    #[error("input {path}")]
    InputIo {
        /// The input path (`-` for standard input).
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A row or header of the input is unreadable (the reader's error, kept as the cause).
    #[error("input {path}")]
    InputRead {
        /// The input path (`-` for standard input).
        path: String,
        /// What the reader found.
        #[source]
        source: crate::input::InputError,
    },
    /// A workbook input cannot be opened, or lacks the sheet asked for.
    #[error("input {path}")]
    InputSheet {
        /// The input path.
        path: String,
        /// What the workbook reader found.
        #[source]
        source: crate::input::sheet::SheetError,
    },
    /// A results file given as input (`refresh --input`, `report`) is not one, or is damaged.
    #[error("input {path}")]
    ResultsInput {
        /// The results file read.
        path: String,
        /// Why it could not be read back.
        #[source]
        source: crate::results::output::ReadError,
    },
    /// The earlier results file that `--resume` continues is not one, or is damaged.
    #[error("output {path}")]
    ResultsOutput {
        /// The results file read.
        path: String,
        /// Why it could not be read back.
        #[source]
        source: crate::results::output::ReadError,
    },
    /// The results file cannot be created, read or written (an I/O error, kept as the cause).
    #[error("output {path}")]
    OutputIo {
        /// The results path (`-` for standard output).
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The results file failed after rows were sent: the journal is kept and `--resume` finishes
    /// the file. Not "nothing was sent", so it has its own variant and message.
    #[error("output {path}: rows were sent before this failure and the journal is kept: once the file can be written, run the same command with --resume")]
    OutputAfterSend {
        /// The results path (`-` for standard output).
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Standard input (or a pipe) could not be copied to a temporary file to be read twice.
    #[error("input {path}: cannot buffer the input")]
    InputBuffer {
        /// The input path (`-` for standard input).
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The journal beside the results file cannot be read (`--resume`).
    #[error("output {path}: journal")]
    JournalIo {
        /// The results file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The results file's lock file cannot be created, locked or written.
    #[error("output {path}: cannot {action} {lock}")]
    LockFile {
        /// The results file.
        path: String,
        /// What failed: `create the lock file`, `lock`, `write the lock file`.
        action: &'static str,
        /// The lock file.
        lock: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the results file's lock.
    #[error("output {path}: in use by {holder} (lock file {lock}); two runs on one results file would corrupt it, so nothing was sent: wait for that run to end (--force does not override a live lock)")]
    Locked {
        /// The results file.
        path: String,
        /// `process N` as the lock file names it.
        holder: String,
        /// The lock file.
        lock: String,
    },
    /// The config file (`--config`) could not be read (the I/O error, kept as the cause).
    #[error("config file {path}")]
    ConfigFileIo {
        /// The file named by `--config`.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The config file (`--config`) is not TOML of the expected form (the parser's error, kept
    /// as the cause).
    #[error("config file {path}")]
    ConfigFileSyntax {
        /// The file named by `--config`.
        path: PathBuf,
        /// What the TOML parser found.
        #[source]
        source: crate::engine::config::TomlError,
    },
    /// The HTTP client could not be built (TLS set-up, for example).
    #[error("configuration: HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// A URL flag or setting does not parse as a URL. The parser's reason stays in the message
    /// where it always was (in parentheses); the cause is kept as well and not printed twice.
    #[error("configuration: {what}: {text:?} is not a URL ({source})")]
    BadUrl {
        /// The flag or setting, e.g. `--base-url`.
        what: String,
        /// The text given.
        text: String,
        /// Why it does not parse.
        #[source]
        source: url::ParseError,
    },
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
    /// The folder the results file goes in cannot be read.
    #[error("output {path}: directory {dir}")]
    OutputDir {
        /// The results path.
        path: String,
        /// Its folder.
        dir: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A task reading the input ended without an answer (cancelled or panicked).
    #[error("input {path}: {what}")]
    InputTask {
        /// The input path.
        path: String,
        /// What was being done.
        what: &'static str,
        /// Why the task ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The export file that `export --resume` continues is not CSV (the CSV reader's error, kept
    /// as the cause).
    #[error("input {path}: --resume")]
    ExportResumeRead {
        /// The export file.
        path: String,
        /// What the CSV reader found.
        #[source]
        source: csv::Error,
    },
}

impl ErrorKind {
    /// The exit code this error ends the process with.
    ///
    /// The one place errors become exit codes: every variant is named (no catch-all), so a new
    /// variant has to be placed here deliberately. The numbers are the documented contract (0,
    /// 1, 2, 130); whether rows were already sent is said by the message, not the number.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            // A closed pipe on standard output is the reader's choice, not an error.
            ErrorKind::BrokenPipe => ExitCode::Success,
            // Nothing was sent: the run could not start.
            ErrorKind::Config(_)
            | ErrorKind::ConfigFile { .. }
            | ErrorKind::Credentials(_)
            | ErrorKind::TokenFile { .. }
            | ErrorKind::Token(_)
            | ErrorKind::Input { .. }
            | ErrorKind::InputIo { .. }
            | ErrorKind::InputRead { .. }
            | ErrorKind::InputSheet { .. }
            | ErrorKind::ResultsInput { .. }
            | ErrorKind::ResultsOutput { .. }
            | ErrorKind::Output { .. }
            | ErrorKind::OutputIo { .. }
            | ErrorKind::ResumeMismatch(_)
            | ErrorKind::Preflight(_)
            | ErrorKind::ValidationCodes(_)
            | ErrorKind::Sandbox(_)
            | ErrorKind::Login(_)
            | ErrorKind::LockFile { .. }
            | ErrorKind::InputBuffer { .. }
            | ErrorKind::JournalIo { .. }
            | ErrorKind::Locked { .. }
            | ErrorKind::ConfigFileIo { .. }
            | ErrorKind::ConfigFileSyntax { .. }
            | ErrorKind::HttpClient(_)
            | ErrorKind::BadUrl { .. }
            | ErrorKind::OutputDir { .. }
            | ErrorKind::InputTask { .. }
            | ErrorKind::ExportResumeRead { .. } => ExitCode::Usage,
            #[cfg(feature = "sandbox")]
            ErrorKind::SandboxStart(_)
            | ErrorKind::SimulatorInput { .. }
            | ErrorKind::ThrottleChange(_) => ExitCode::Usage,
            // Stopped for good after rows may have been sent; the message names `--resume`.
            ErrorKind::OutputAfterSend { .. } => ExitCode::STOPPED,
        }
    }
}

impl ErrorKind {
    /// The error and its causes on one line, `outer: cause: cause`, for the one message the
    /// binary prints. A cause whose text the outer message already carries is not repeated.
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// Any error and its causes on one line, `outer: cause: cause`; a cause whose text the message
/// so far already carries is not repeated. For errors shown outside [`ErrorKind::chain`] (log
/// lines, results cells) so that a cause kept as `#[source]` is not lost from the text.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        text
    }
}

/// Shorthand for results whose error is [`ErrorKind`].
pub type Result<T, E = ErrorKind> = std::result::Result<T, E>;

/// The documented process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Every row created, exists, duplicate or planned.
    Success = 0,
    /// The run finished and some rows failed or were invalid.
    RowsFailed = 1,
    /// Usage, configuration, credentials, unreadable input or a locked results file (nothing was
    /// sent); or a run stopped for good by a sign-in problem or an outage (`--resume` finishes it).
    Usage = 2,
    /// Interrupted by SIGINT, SIGTERM, SIGHUP or SIGQUIT.
    Interrupted = 130,
}

impl ExitCode {
    /// A run stopped for good after rows may have been sent (MFA, token endpoint, outage): the
    /// same number as [`ExitCode::Usage`], but its message names the cause and `--resume`.
    pub const STOPPED: ExitCode = ExitCode::Usage;
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_carries_every_cause_once() {
        let login = ErrorKind::Login(crate::partner_center::login::LoginError::Declined {
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
        let mut table: Vec<(ErrorKind, u8)> = vec![
            (ErrorKind::Config("x".into()), 2),
            (
                ErrorKind::ConfigFile {
                    path: "c.toml".into(),
                    reason: "x".into(),
                },
                2,
            ),
            (ErrorKind::Credentials("x".into()), 2),
            (ErrorKind::Token("x".into()), 2),
            (
                ErrorKind::TokenFile {
                    path: "token".into(),
                    source: io(),
                },
                2,
            ),
            (
                ErrorKind::Input {
                    path: path(),
                    reason: "x".into(),
                },
                2,
            ),
            (
                ErrorKind::Output {
                    path: path(),
                    reason: "x".into(),
                },
                2,
            ),
            (ErrorKind::ResumeMismatch("x".into()), 2),
            (ErrorKind::Preflight("x".into()), 2),
            (
                ErrorKind::ValidationCodes(crate::partner_center::api::ValidationsError::NotAList),
                2,
            ),
            (ErrorKind::Sandbox("x".into()), 2),
            (
                ErrorKind::Login(crate::partner_center::login::LoginError::Declined {
                    error: "access_denied".into(),
                }),
                2,
            ),
            (ErrorKind::BrokenPipe, 0),
            (
                ErrorKind::InputIo {
                    path: path(),
                    source: io(),
                },
                2,
            ),
            (
                ErrorKind::InputRead {
                    path: path(),
                    source: crate::input::InputError::Empty,
                },
                2,
            ),
            (
                ErrorKind::InputSheet {
                    path: path(),
                    source: crate::input::sheet::SheetError::NoSheets,
                },
                2,
            ),
            (
                ErrorKind::ResultsInput {
                    path: path(),
                    source: crate::results::output::ReadError::NotResults,
                },
                2,
            ),
            (
                ErrorKind::ResultsOutput {
                    path: path(),
                    source: crate::results::output::ReadError::NotResults,
                },
                2,
            ),
            (
                ErrorKind::OutputIo {
                    path: path(),
                    source: io(),
                },
                2,
            ),
            (
                ErrorKind::OutputAfterSend {
                    path: path(),
                    source: io(),
                },
                2,
            ),
            (
                ErrorKind::LockFile {
                    path: path(),
                    action: "lock",
                    lock: "out.csv.lock".into(),
                    source: io(),
                },
                2,
            ),
            (
                ErrorKind::InputBuffer {
                    path: "-".into(),
                    source: io(),
                },
                2,
            ),
            (
                ErrorKind::JournalIo {
                    path: path(),
                    source: io(),
                },
                2,
            ),
            (
                ErrorKind::Locked {
                    path: path(),
                    holder: "process 1".into(),
                    lock: "out.csv.lock".into(),
                },
                2,
            ),
            (
                ErrorKind::ConfigFileIo {
                    path: "c.toml".into(),
                    source: io(),
                },
                2,
            ),
            (
                ErrorKind::ConfigFileSyntax {
                    path: "c.toml".into(),
                    source: toml_error(),
                },
                2,
            ),
            (ErrorKind::HttpClient(reqwest_error()), 2),
            (bad_url(), 2),
            (
                ErrorKind::OutputDir {
                    path: path(),
                    dir: "d".into(),
                    source: io(),
                },
                2,
            ),
            (
                ErrorKind::InputTask {
                    path: path(),
                    what: "reading the input was cancelled",
                    source: join_error(),
                },
                2,
            ),
            (
                ErrorKind::ExportResumeRead {
                    path: path(),
                    source: csv::Error::from(io()),
                },
                2,
            ),
        ];
        #[cfg(feature = "sandbox")]
        table.extend([
            (ErrorKind::SandboxStart(sim_error()), 2),
            (
                ErrorKind::SimulatorInput {
                    path: path(),
                    source: sim_error(),
                },
                2,
            ),
            (
                ErrorKind::ThrottleChange(
                    crate::simulator::parse_throttle_change("x").expect_err("no colon"),
                ),
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
                let debug = format!("{e:?}");
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

    fn bad_url() -> ErrorKind {
        ErrorKind::BadUrl {
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
        let cases: Vec<(ErrorKind, &str)> = vec![
            (
                ErrorKind::ConfigFileIo {
                    path: "c.toml".into(),
                    source: io(),
                },
                "config file c.toml: permission denied",
            ),
            (
                ErrorKind::OutputDir {
                    path: "d/out.csv".into(),
                    dir: "d".into(),
                    source: io(),
                },
                "output d/out.csv: directory d: permission denied",
            ),
            (
                ErrorKind::ExportResumeRead {
                    path: "e.csv".into(),
                    source: csv::Error::from(io()),
                },
                "input e.csv: --resume: permission denied",
            ),
            (
                bad_url(),
                "configuration: --base-url: \"::\" is not a URL (relative URL without a base)",
            ),
        ];
        for (error, text) in &cases {
            assert!(error.source().is_some(), "{error:?}");
            assert_eq!(error.chain(), *text);
        }

        // The TOML parser's one-line message, not its multi-line excerpt of the file.
        let syntax = ErrorKind::ConfigFileSyntax {
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

        let client = ErrorKind::HttpClient(reqwest_error());
        assert!(client.source().is_some());
        let text = client.chain();
        assert!(
            text.starts_with("configuration: HTTP client: builder error"),
            "{text}"
        );

        let task = ErrorKind::InputTask {
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
        let start = ErrorKind::SandboxStart(sim_error());
        assert!(start.source().is_some());
        // `SimError::Bind` prints its own cause; it is not repeated.
        assert_eq!(
            start.chain(),
            "sandbox: simulator cannot listen on 127.0.0.1:8080: permission denied"
        );
        let preload = ErrorKind::SimulatorInput {
            path: "p.csv".into(),
            source: crate::simulator::SimError::Preload {
                line: 2,
                reason: "bad".into(),
            },
        };
        assert!(preload.source().is_some());
        assert_eq!(preload.chain(), "input p.csv: preload line 2: bad");
        let change = ErrorKind::ThrottleChange(
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
        let err = ErrorKind::OutputIo {
            path: "out.csv".into(),
            source: io(),
        };
        assert_eq!(err.chain(), "output out.csv: permission denied");
        let after = ErrorKind::OutputAfterSend {
            path: "out.csv".into(),
            source: io(),
        };
        let text = after.chain();
        assert!(text.starts_with("output out.csv: rows were sent"), "{text}");
        assert!(text.contains("--resume"), "{text}");
        assert_eq!(text.matches("permission denied").count(), 1, "{text}");
        let bad_row = ErrorKind::ResultsInput {
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
        let empty = ErrorKind::InputRead {
            path: "in.csv".into(),
            source: crate::input::InputError::Empty,
        };
        assert_eq!(
            empty.chain(),
            "input in.csv: the file is empty (no header row)"
        );
    }
}
