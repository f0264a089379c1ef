//! The process exit codes, and the one way an error and its causes become one line of text.

/// Any error and its causes on one line, `outer: cause: cause`; a cause whose text the message
/// so far already carries is not repeated. For errors shown outside the binary's one error message (log
/// lines, results cells) so that a cause kept as `#[source]` is not lost from the text.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    for cause in std::iter::successors(error.source(), |cause| cause.source()) {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
    }
    text
}

/// `error.chain()` for any error: [`chain`] as a method.
pub trait ChainExt {
    /// The error and its causes on one line (see [`chain`]).
    fn chain(&self) -> String;
}

impl<E: std::error::Error + 'static> ChainExt for E {
    fn chain(&self) -> String {
        chain(self)
    }
}

/// The text a panic was raised with (its payload, as `std::panic::catch_unwind` or a thread's
/// `join` hands it back).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload.downcast_ref::<&str>().copied();
    text.or(payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic with a non-text payload")
        .to_string()
}

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
