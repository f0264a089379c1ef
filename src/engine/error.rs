//! The engine's error: what stops a job before or outside the per-row flow. It owns the
//! settings' and pre-flight failures and carries the layers' below as they are.

use std::path::PathBuf;

use crate::input::InputFileError;
use crate::partner_center::PartnerCenterError;
use crate::results::ResultsError;

/// Why a job could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
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
    /// A pre-flight read against the service (validation codes, for example) failed or ruled the run out.
    #[error("pre-flight check: {0}")]
    Preflight(String),
    /// The validation codes answer (`--validation-code auto`) is unusable.
    #[error("pre-flight check")]
    ValidationCodes(#[source] crate::partner_center::api::ValidationsError),
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
    /// The input file failed. (The layers' errors are boxed so that a `Result` stays small on
    /// the paths that return one per row.)
    #[error(transparent)]
    Input(Box<InputFileError>),
    /// The results file (or a file beside it) failed.
    #[error(transparent)]
    Results(Box<ResultsError>),
    /// Sign-in or the client's set-up failed.
    #[error(transparent)]
    PartnerCenter(Box<PartnerCenterError>),
}

/// The layers' errors, boxed into their variants.
macro_rules! boxed_from {
    ($($variant:ident($error:ty)),*) => {$(
        impl From<$error> for JobError {
            fn from(error: $error) -> Self {
                JobError::$variant(Box::new(error))
            }
        }
    )*};
}
boxed_from!(
    Input(InputFileError),
    Results(ResultsError),
    PartnerCenter(PartnerCenterError)
);
