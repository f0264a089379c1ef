//! One writer per results file: an exclusive advisory lock on `<results>.lock`, which holds the
//! owner's process id. The operating system releases the lock when its holder exits, however it
//! exits, so a lock file left by a killed run never blocks the next one; a live holder always
//! does, `--force` or not.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::ErrorKind;

/// The held lock; dropping it removes the lock file and releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Removed while still locked: a process that opens the old file afterwards finds it
        // unlinked (see `acquire`) and starts over on a new one.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// The lock file that guards `results`.
pub fn lock_path(results: &Path) -> PathBuf {
    let mut name = results.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the exclusive lock for the results file `results`, or fails at once (exit 2) naming
/// the file and the process that holds it.
pub fn acquire(results: &Path) -> Result<LockGuard, ErrorKind> {
    let path = lock_path(results);
    let err = |reason: String| ErrorKind::Output {
        path: results.display().to_string(),
        reason,
    };
    // A few rounds at most: each retry means a holder removed its file between our open and lock.
    for _ in 0..8 {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                err(format!(
                    "cannot create the lock file {}: {e}",
                    path.display()
                ))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = text
                    .trim()
                    .parse::<u32>()
                    .map(|pid| format!("process {pid}"))
                    .unwrap_or_else(|_| "another process".to_string());
                return Err(ErrorKind::Locked {
                    path: results.display().to_string(),
                    holder,
                    lock: path.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(err(format!("cannot lock {}: {e}", path.display())))
            }
        }
        if !same_file(&file, &path) {
            // The holder we waited on removed this file as it finished: lock the current one.
            continue;
        }
        let pid = std::process::id().to_string();
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| file.write_all(pid.as_bytes()))
            .and_then(|()| file.flush());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return Err(err(format!(
                "cannot write the lock file {}: {e}",
                path.display()
            )));
        }
        return Ok(LockGuard { file, path });
    }
    Err(err(format!(
        "the lock file {} keeps being replaced; is another run starting and stopping?",
        path.display()
    )))
}

/// Whether `path` still names the open `file` (it was not removed or replaced meanwhile).
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_pid_and_a_released_lock_is_free() {
        let dir = std::env::temp_dir().join(format!("pcq-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let results = dir.join("out.csv");
        let guard = acquire(&results).expect("first");
        let text = std::fs::read_to_string(lock_path(&results)).expect("lock file");
        assert_eq!(text, std::process::id().to_string());
        let err = acquire(&results).expect_err("held").to_string();
        assert!(
            err.contains(&std::process::id().to_string()) && err.contains("out.csv"),
            "{err}"
        );
        drop(guard);
        assert!(!lock_path(&results).exists(), "removed on release");
        // A stale file of a dead process (no OS lock on it) does not block.
        std::fs::write(lock_path(&results), "4000000").expect("stale");
        let guard = acquire(&results).expect("stale file is taken over");
        drop(guard);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
