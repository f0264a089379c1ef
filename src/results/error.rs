//! The results layer's error: the results file, its journal or its lock cannot be created, read
//! or written, or an earlier results file does not fit the run.

use crate::input::InputFileError;

/// Why the results file (or a file beside it) could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultsError {
    /// The results file cannot be created, read or written.
    #[error("output {path}: {reason}")]
    Output {
        /// The results path (`-` for standard output).
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The results file cannot be created, read or written (an I/O error, kept as the cause).
    #[error("output {path}")]
    OutputIo {
        /// The results path (`-` for standard output).
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The results file or its journal failed after requests were sent: the journal is kept and
    /// `--resume` finishes the file. Not "nothing was sent", so it has its own variant and message.
    #[error("output {path}: requests were sent before this failure and the journal is kept: once the file can be written, run the same command with --resume")]
    OutputAfterSend {
        /// The results path (`-` for standard output).
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Windows refused to create, open or replace an output because another program holds it
    /// open: Excel keeps a workbook it shows open without sharing it, which no other process can
    /// then write ("Sharing violation", os error 32) or rename over ("Access denied", os error 5).
    /// Raised before the file is changed, so nothing was changed; built by [`ResultsError::output_io`].
    #[error("{path} is open in another program (Excel?); close it and run again")]
    OpenElsewhere {
        /// The output as given.
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The folder the results file goes in cannot be read.
    #[error("output {path}: directory {dir}")]
    OutputDir {
        /// The results path.
        path: String,
        /// Its folder.
        dir: String,
        #[source]
        source: std::io::Error,
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
    /// `--resume` found results that do not belong to this input.
    #[error("resume: {0}")]
    ResumeMismatch(String),
    /// The journal beside the results file cannot be read (`--resume`).
    #[error("output {path}: journal")]
    JournalIo {
        /// The results file.
        path: String,
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
    /// Writing to standard output failed because the reader went away.
    #[error("broken pipe")]
    BrokenPipe,
    /// Two roles of one command (input, output, a file beside the output, metrics, report,
    /// config) name one file: writing one would destroy the other.
    #[error("{first} and {second} name the same file ({path}{}): one file cannot serve two roles in a run; nothing was read or written (--force does not change this)", if path == other { String::new() } else { format!(" and {other}") })]
    SameFile {
        /// The first role's name, e.g. `--input`.
        first: String,
        /// The second role's name.
        second: String,
        /// The first role's path as given.
        path: String,
        /// The second role's path as given.
        other: String,
    },
    /// The input read alongside (by `--resume`) failed.
    #[error(transparent)]
    Input(Box<InputFileError>),
}

impl ResultsError {
    /// The error for an output (results, export, report page, metrics textfile) that could not
    /// be created, opened or replaced: [`ResultsError::OpenElsewhere`] where Windows says another
    /// program holds the file, [`ResultsError::OutputIo`] otherwise. The one place that mapping
    /// is made.
    pub(crate) fn output_io(path: impl Into<String>, source: std::io::Error) -> Self {
        let path = path.into();
        if held_elsewhere(&path, &source) {
            ResultsError::OpenElsewhere { path, source }
        } else {
            ResultsError::OutputIo { path, source }
        }
    }

    /// As [`ResultsError::output_io`], for an output that may be a pipe: a reader that went
    /// away (`| head`) is [`ResultsError::BrokenPipe`], which ends the command quietly.
    pub(crate) fn piped_io(path: impl Into<String>, source: std::io::Error) -> Self {
        match source.kind() {
            std::io::ErrorKind::BrokenPipe => ResultsError::BrokenPipe,
            _ => ResultsError::output_io(path, source),
        }
    }
}

/// Whether `err`, met creating, opening or replacing `path`, means another program holds the
/// file open. Only Windows says so, with "Access denied" (5) or "Sharing violation" (32); a
/// read-only file also gets "Access denied" and is left to the plain error.
fn held_elsewhere(path: &str, err: &std::io::Error) -> bool {
    const ERROR_ACCESS_DENIED: i32 = 5;
    const ERROR_SHARING_VIOLATION: i32 = 32;
    cfg!(windows)
        && match err.raw_os_error() {
            Some(ERROR_SHARING_VIOLATION) => true,
            Some(ERROR_ACCESS_DENIED) => std::fs::metadata(path)
                .is_ok_and(|meta| meta.is_file() && !meta.permissions().readonly()),
            _ => false,
        }
}

impl From<InputFileError> for ResultsError {
    fn from(error: InputFileError) -> Self {
        ResultsError::Input(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_windows_reads_errors_5_and_32_as_a_file_open_elsewhere() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("results.csv");
        std::fs::write(&file, "x").expect("write");
        let path = file.display().to_string();
        // On Linux 5 and 32 are EIO and EPIPE: nothing to do with another program.
        for code in [5, 32] {
            let err = ResultsError::output_io(&*path, std::io::Error::from_raw_os_error(code));
            assert_eq!(
                matches!(err, ResultsError::OpenElsewhere { .. }),
                cfg!(windows),
                "os error {code}: {err:?}"
            );
        }
        let err = ResultsError::output_io(&*path, std::io::Error::from_raw_os_error(2));
        assert!(matches!(err, ResultsError::OutputIo { .. }), "{err:?}");
    }
}
