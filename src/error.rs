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
    /// The local sandbox could not be started.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// `pc-qualify login` did not end with a saved refresh token.
    #[error("login failed")]
    Login(#[from] crate::login::LoginError),
    /// Writing to standard output failed because the reader went away.
    #[error("broken pipe")]
    BrokenPipe,
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
}

impl ErrorKind {
    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ErrorKind::BrokenPipe => ExitCode::Success,
            _ => ExitCode::Usage,
        }
    }
}

impl ErrorKind {
    /// The error and its causes on one line, `outer: cause: cause`, for the one message the
    /// binary prints. A cause whose text the outer message already carries is not repeated.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
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
        let login = ErrorKind::Login(crate::login::LoginError::Declined {
            error: "access_denied".into(),
        });
        let text = login.chain();
        assert!(text.starts_with("login failed: "), "{text}");
        assert_eq!(text.matches("access_denied").count(), 1, "{text}");
    }

    #[test]
    fn exit_codes_map_in_one_place() {
        assert_eq!(ErrorKind::BrokenPipe.exit_code(), ExitCode::Success);
        assert_eq!(
            ErrorKind::Config("x".into()).exit_code() as u8,
            ExitCode::Usage as u8
        );
    }
}
