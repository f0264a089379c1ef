//! The input layer's error: the input file cannot be opened or read as a whole (a bad row is
//! not an error: it becomes an `invalid` results row).

/// Why the input file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputFileError {
    /// The input file cannot be opened or its header is unusable.
    #[error("input {path}: {reason}")]
    Input {
        /// The input path (`-` for standard input).
        path: String,
        /// What went wrong.
        reason: String,
    },
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
    /// Standard input (or a pipe) could not be copied to a temporary file to be read twice.
    #[error("input {path}: cannot buffer the input")]
    InputBuffer {
        /// The input path (`-` for standard input).
        path: String,
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
}
