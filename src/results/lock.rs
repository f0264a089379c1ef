//! One writer per results file: an exclusive advisory lock on `<results>.lock`, which holds the
//! owner's process id. The operating system releases the lock when its holder exits, however it
//! exits, so a lock file left by a killed run never blocks the next one; a live holder always
//! does, `--force` or not.

use crate::results::ResultsError;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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

/// The lock file that guards `results`, beside the file the path resolves to ([`side_path`]).
pub fn lock_path(results: &Path) -> PathBuf {
    side_path(results, ".lock")
}

/// A file the tool keeps beside the results file (lock, journal, timeline): its real path
/// ([`resolve`]) with `suffix`, so that a symlink, a second relative spelling or `dir/../out.csv`
/// all meet at one lock, journal and timeline.
pub(crate) fn side_path(results: &Path, suffix: &str) -> PathBuf {
    let mut name = resolve(results).into_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// `path` with symlinks and `.`/`..` resolved as far as they exist: the file itself when it
/// exists, otherwise its folder joined with its name; as typed when neither resolves. A symlink
/// whose target does not exist yet resolves to that target, as it will once a run has written
/// through it: otherwise the first run would keep its lock and journal beside the link and the
/// next ones beside the target, two locks and two journals for one file.
pub(crate) fn resolve(path: &Path) -> PathBuf {
    let path = crate::domain::atomic::link_target(path);
    if let Ok(real) = std::fs::canonicalize(&path) {
        return plain(real);
    }
    let Some(name) = path.file_name() else {
        return path;
    };
    match std::fs::canonicalize(crate::domain::atomic::folder(&path)) {
        Ok(dir) => plain(dir).join(name),
        Err(_) => path,
    }
}

/// A canonical path as a Windows user writes it: `canonicalize` gives the verbatim form
/// (`\\?\C:\...`, `\\?\UNC\server\share\...`), which messages would show and users do not
/// recognise. The plain form names the same file: std adds the prefix itself where a path needs
/// it (past MAX_PATH).
#[cfg(windows)]
fn plain(path: PathBuf) -> PathBuf {
    let Some(text) = path.to_str() else {
        return path;
    };
    if let Some(rest) = text.strip_prefix(r"\\?\UNC\") {
        return PathBuf::from(format!(r"\\{rest}"));
    }
    match text.strip_prefix(r"\\?\") {
        // A drive path only: other verbatim forms (volume GUIDs) have no plain spelling.
        Some(rest) if rest.as_bytes().get(1) == Some(&b':') => PathBuf::from(rest),
        _ => path,
    }
}

/// Elsewhere canonical paths are already as users write them.
#[cfg(not(windows))]
fn plain(path: PathBuf) -> PathBuf {
    path
}

/// Whether `results` names something a run writes into as a file, and so needs a lock (and a
/// journal) beside it: not yet there, or a regular file (through any symlink). A character
/// device such as `/dev/null` or a FIFO is not: nothing is ever read back from it, and a lock
/// or journal file beside it would land in `/dev` (as root) or fail (as anyone else).
pub fn is_lockable(results: &Path) -> bool {
    match std::fs::metadata(results) {
        Ok(meta) => meta.is_file(),
        Err(_) => true,
    }
}

/// Takes the exclusive lock for the results file `results`, or fails at once (exit 2) naming
/// the file and the process that holds it.
pub fn acquire(results: &Path) -> Result<LockGuard, ResultsError> {
    let path = lock_path(results);
    let lock_error = |action, source| ResultsError::LockFile {
        path: results.display().to_string(),
        action,
        lock: path.display().to_string(),
        source,
    };
    // A few rounds at most: each retry means a holder removed its file between our open and lock.
    for _ in 0..8 {
        let mut file = crate::domain::atomic::open_side_file(
            &path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
            false,
        )
        .map_err(|e| lock_error("create the lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                // A pid is a few digits: a lock file grown by someone else is not read whole.
                let mut text = String::new();
                let _ = (&file).take(64).read_to_string(&mut text);
                let holder = text
                    .trim()
                    .parse::<u32>()
                    .map(|pid| format!("process {pid}"))
                    .unwrap_or_else(|_| "another process".to_string());
                return Err(ResultsError::Locked {
                    path: results.display().to_string(),
                    holder,
                    lock: path.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_error("lock", e)),
        }
        if !same_file(&file, &path) {
            // The holder we waited on removed this file as it finished: lock the current one.
            continue;
        }
        let pid = std::process::id().to_string();
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| file.write_all(pid.as_bytes()));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return Err(lock_error("write the lock file", e));
        }
        return Ok(LockGuard { file, path });
    }
    Err(ResultsError::Output {
        path: results.display().to_string(),
        reason: format!(
            "the lock file {} keeps being replaced; is another run starting and stopping?",
            path.display()
        ),
    })
}

/// Whether `path` still names the open `file` (it was not removed or replaced meanwhile). Unix
/// compares `lstat`'s ids, never opening the path: a FIFO planted there would block an open.
/// Windows has no file id without a handle, so `same-file` opens it, sharing every access.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ids = |m: std::fs::Metadata| (m.dev(), m.ino());
        let named = std::fs::symlink_metadata(path).map(ids);
        matches!((file.metadata().map(ids), named), (Ok(a), Ok(b)) if a == b)
    }
    #[cfg(not(unix))]
    {
        let open = file.try_clone().and_then(same_file::Handle::from_file);
        matches!((open, same_file::Handle::from_path(path)), (Ok(a), Ok(b)) if a == b)
    }
}

/// One writer per output file: takes its lock (none for standard output) before the file checks,
/// so a second run is told who holds the file, not that it exists, then checks the target
/// (unless `resume` continues it). When the lock cannot even be created, the check's clearer
/// reason (a missing folder) is reported instead. Held until the guard drops.
pub(crate) fn lock_output(
    output_path: &str,
    force: bool,
    resume: bool,
) -> Result<Option<LockGuard>, ResultsError> {
    let check = || match resume {
        true => Ok(()),
        false => crate::results::output::check_target(output_path, force),
    };
    // Standard output, and a device or FIFO (`/dev/null`), is never read back: no lock beside it.
    if output_path == "-" || !is_lockable(Path::new(output_path)) {
        check()?;
        return Ok(None);
    }
    let lock = acquire(Path::new(output_path));
    if !matches!(lock, Err(ResultsError::Locked { .. })) {
        check()?;
    }
    lock.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the check that the lock file was not replaced opened the path (following
    /// links, blocking on a FIFO) after `open_side_file` had refused both; it must only `lstat`.
    #[cfg(unix)]
    #[test]
    fn a_fifo_planted_at_the_lock_path_is_not_opened_by_the_replaced_check() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("out.csv.lock");
        let file = File::create(&path).expect("lock file");
        assert!(same_file(&file, &path));
        std::fs::remove_file(&path).expect("remove");
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.expect("mkfifo runs").success(), "mkfifo");
        // Opening a FIFO to read waits for a writer: a check that opened it would never answer.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(same_file(&file, &path)));
        let same = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(
            same,
            Ok(false),
            "the FIFO must be told apart without opening it"
        );
    }

    #[test]
    fn a_second_holder_is_refused_with_the_pid_and_a_released_lock_is_free() {
        let tmp = tempfile::tempdir().expect("dir");
        let dir = tmp.path();
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
    }

    /// Regression: a symlink whose target did not exist yet was resolved to itself, so the run
    /// that created the target locked and journalled beside the link and every later run beside
    /// the target: a second run on the target was not refused, and a `--resume` through the
    /// link missed the journal of the run before it.
    #[cfg(unix)]
    #[test]
    fn a_dangling_symlink_shares_the_lock_of_the_file_it_will_create() {
        let tmp = tempfile::tempdir().expect("dir");
        let dir = tmp.path();
        std::fs::create_dir(dir.join("sub")).expect("sub");
        let link = dir.join("link.csv");
        // A relative target, resolved from the link's folder; then a link to that link.
        std::os::unix::fs::symlink("sub/real.csv", &link).expect("symlink");
        let chain = dir.join("chain.csv");
        std::os::unix::fs::symlink(&link, &chain).expect("second symlink");
        let before = [lock_path(&link), lock_path(&chain)];
        let guard = acquire(&link).expect("first");
        std::fs::write(dir.join("sub/real.csv"), "row\n").expect("the run writes its target");
        let real = dir.join("sub/real.csv");
        assert_eq!(before, [lock_path(&real), lock_path(&real)]);
        assert!(
            acquire(&real).is_err(),
            "the target is held through the link"
        );
        drop(guard);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_and_another_spelling_share_the_lock() {
        let tmp = tempfile::tempdir().expect("dir");
        let dir = tmp.path();
        std::fs::create_dir(dir.join("sub")).expect("sub");
        let results = dir.join("out.csv");
        std::fs::write(&results, "row\n").expect("results");
        let link = dir.join("link.csv");
        std::os::unix::fs::symlink(&results, &link).expect("symlink");
        let guard = acquire(&results).expect("first");
        for other in [link.clone(), dir.join("sub/../out.csv")] {
            let err = acquire(&other).expect_err("the same file is held");
            assert!(
                matches!(err, ResultsError::Locked { .. }),
                "{other:?}: {err}"
            );
        }
        drop(guard);
        // A file not yet there: its folder decides.
        let fresh = dir.join("sub/../new.csv");
        let guard = acquire(&fresh).expect("first");
        assert!(
            acquire(&dir.join("new.csv")).is_err(),
            "same file, other spelling"
        );
        drop(guard);
        // The journal follows the same rule, so a --resume through the link finds it.
        let journal = |p: &Path| crate::results::resume::journal_path(&p.to_string_lossy());
        assert_eq!(journal(&link), journal(&results));
        assert_eq!(
            journal(&dir.join("sub/../new.csv")),
            journal(&dir.join("new.csv"))
        );
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_not_locked() {
        assert!(!is_lockable(Path::new("/dev/null")));
        let tmp = tempfile::tempdir().expect("dir");
        assert!(is_lockable(&tmp.path().join("new.csv")));
        std::fs::write(tmp.path().join("old.csv"), "x").expect("write");
        assert!(is_lockable(&tmp.path().join("old.csv")));
    }
}
