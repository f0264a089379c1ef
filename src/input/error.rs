//! The input layer's error: the input file cannot be opened or read as a whole (a bad row is
//! not an error: it becomes an `invalid` results row).

/// Why the input file could not be read; each variant names the input's `path` (`-` for standard
/// input) and keeps what went wrong as its `reason` or, for the error of a lower layer, its
/// `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputFileError {
    /// The input file cannot be opened or its header is unusable.
    #[error("input {path}: {reason}")]
    Input { path: String, reason: String },
    /// The input file could not be opened or read (an I/O error).
    #[error("input {path}")]
    InputIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A row or header of the input is unreadable.
    #[error("input {path}")]
    InputRead {
        path: String,
        #[source]
        source: crate::input::InputError,
    },
    /// A workbook input cannot be opened, or lacks the sheet asked for.
    #[error("input {path}")]
    InputSheet {
        path: String,
        #[source]
        source: crate::input::sheet::SheetError,
    },
    /// Standard input (or a pipe) could not be copied to a temporary file to be read twice.
    #[error("input {path}: cannot buffer the input")]
    InputBuffer {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A task reading the input ended without an answer (cancelled or panicked).
    #[error("input {path}: {what}")]
    InputTask {
        path: String,
        /// What was being done.
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}
