//! Replacing a file whole: the new contents go to a temporary file beside it (tempfile), are
//! synced, and renamed over the old one, so a reader or a crash sees the old file or the new one,
//! never half of either. One place for the token file, the metrics textfile, the report page and
//! the rewrites of `--resume`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Writes `path` through `write` and renames the result over it (see [`Replacement`]).
pub(crate) fn replace<T>(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> io::Result<T>,
) -> io::Result<T> {
    let mut replacement = Replacement::new(path, mode)?;
    let value = write(replacement.temp.as_file_mut())?;
    replacement.commit(true)?;
    Ok(value)
}

/// The new contents of `path`, written as they come and put in its place by [`commit`]; dropped
/// uncommitted, the temporary file goes and `path` stays as it was. The temporary file is
/// created fresh beside `path` (never through a file or link left under its name) with `mode`
/// on Unix; it is named `.NAME.XXXX.tmp`, so collectors that pick files up by their ending
/// (node_exporter's `*.prom`) never see it half written.
///
/// [`commit`]: Replacement::commit
pub(crate) struct Replacement {
    temp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl Replacement {
    pub(crate) fn new(path: &Path, mode: u32) -> io::Result<Self> {
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a file path", path.display()),
            )
        })?;
        let prefix = format!(".{}.", name.to_string_lossy());
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            // Set explicitly: the umask would otherwise decide (a token file must stay 0600, a
            // metrics file readable by node_exporter's user).
            builder.permissions(std::fs::Permissions::from_mode(mode));
        }
        let temp = builder.tempfile_in(folder(path))?;
        // Windows's 0600: this user alone, set before anything is written (a rename keeps it).
        #[cfg(windows)]
        if mode & 0o077 == 0 {
            owner_only(temp.path())?;
        }
        #[cfg(not(any(unix, windows)))]
        let _ = mode;
        Ok(Replacement {
            temp,
            path: path.to_path_buf(),
        })
    }

    /// Syncs the new contents and renames them over the file; `overwrite: false` fails instead
    /// when a file appeared there meanwhile. Every handle on the file must be closed first:
    /// Windows refuses to rename over an open file.
    pub(crate) fn commit(self, overwrite: bool) -> io::Result<()> {
        self.temp.as_file().sync_all()?;
        #[cfg(all(test, target_os = "linux"))]
        refuse_if_open(&self.path)?;
        let persisted = if overwrite {
            self.temp.persist(&self.path)
        } else {
            self.temp.persist_noclobber(&self.path)
        };
        persisted.map_err(|e| e.error)?;
        // Persist the rename itself; some filesystems cannot sync a directory, which is harmless.
        if let Ok(dir) = File::open(folder(&self.path)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Copies what has been written so far to `out`, refused past `limit` bytes. It reads through
    /// the replacement's own handle: a second one would hold up [`commit`] on Windows.
    ///
    /// [`commit`]: Replacement::commit
    pub(crate) fn copy_to(&mut self, out: &mut impl io::Write, limit: u64) -> io::Result<u64> {
        use io::Seek as _;
        let file = self.temp.as_file_mut();
        file.seek(io::SeekFrom::Start(0))?;
        let copied = copy_bounded(&mut *file, out, limit);
        // Later writes go on at the end, whether or not the copy succeeded.
        file.seek(io::SeekFrom::End(0))?;
        copied
    }
}

/// Copies `from` to `out`, refused past `limit` bytes (what was copied by then stays in `out`,
/// which the caller discards).
pub(crate) fn copy_bounded(
    from: impl Read,
    out: &mut impl io::Write,
    limit: u64,
) -> io::Result<u64> {
    let copied = io::copy(&mut from.take(limit.saturating_add(1)), out)?;
    if copied > limit {
        return Err(too_large(limit));
    }
    Ok(copied)
}

/// Why a bounded read stopped: the file is over `limit` bytes.
fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than {limit} bytes"),
    )
}

impl io::Write for Replacement {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// A protected DACL (nothing inherited from the folder) with one entry: full control for the
/// user this process runs as (its token's user SID).
#[cfg(windows)]
fn owner_only(path: &Path) -> io::Result<()> {
    use std::{os::windows::ffi::OsStrExt as _, ptr::null, ptr::null_mut as none};
    use windows_sys::Win32::Security::{Authorization::*, *};
    use windows_sys::Win32::{Foundation::*, Storage::FileSystem::*, System::Threading::*};
    let check = |ok| (ok != 0).then_some(()).ok_or_else(io::Error::last_os_error);
    let wide: Vec<u16> = path.as_os_str().encode_wide().chain([0]).collect();
    // 8-byte aligned room for a TOKEN_USER and its SID, and for an ACL of one entry.
    let (mut user, mut acl, mut tok, mut len) = ([0u64; 16], [0u64; 16], none(), 0);
    let (acl, me) = (acl.as_mut_ptr().cast::<ACL>(), user.as_mut_ptr().cast());
    let name = wide.as_ptr();
    let info = DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION;
    // SAFETY: each buffer is a live local of the size given with it; the SID stays in `user`.
    unsafe {
        check(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut tok))?;
        let got = GetTokenInformation(tok, TokenUser, me, 128, &mut len);
        CloseHandle(tok);
        check(got)?;
        let sid = (*me.cast::<TOKEN_USER>()).User.Sid;
        check(InitializeAcl(acl, 128, ACL_REVISION))?;
        check(AddAccessAllowedAce(acl, ACL_REVISION, FILE_ALL_ACCESS, sid))?;
        match SetNamedSecurityInfoW(name, SE_FILE_OBJECT, info, none(), none(), acl, null()) {
            ERROR_SUCCESS => Ok(()),
            code => Err(io::Error::from_raw_os_error(code as i32)),
        }
    }
}

/// The file a symbolic link at `path` points to (resolved once, here), or `path` itself: a file
/// replaced through a link must be replaced at its target, since a rename over the link would
/// leave a regular file in its place and the old contents at the target. A link whose target
/// does not exist yet (through a chain of links too) resolves to that target, which is created.
pub(crate) fn link_target(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    // As many links as Linux follows (MAXSYMLINKS); a loop of links stops there.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {}
            _ => break,
        }
        if let Ok(real) = std::fs::canonicalize(&path) {
            return real;
        }
        match std::fs::read_link(&path) {
            // A relative target is relative to the link's folder; an absolute one replaces it.
            Ok(target) => path = folder(&path).join(target),
            Err(_) => break,
        }
    }
    path
}

/// The folder `path` is in (`.` for a bare name).
pub(crate) fn folder(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Windows refuses to rename over a file that any handle holds open ("Access denied", os error
/// 5; issue 21) where Linux allows it. The unit tests refuse it here too for this process's own
/// handles, so a rewrite that still holds its source open fails on Linux as well.
#[cfg(all(test, target_os = "linux"))]
fn refuse_if_open(path: &Path) -> io::Result<()> {
    let Ok(target) = std::fs::canonicalize(path) else {
        return Ok(());
    };
    for fd in std::fs::read_dir("/proc/self/fd")?.flatten() {
        if std::fs::read_link(fd.path()).is_ok_and(|open| open == target) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is still open here; Windows would refuse to replace it",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Opens a file the tool keeps beside another (the lock, the journal, export's `.unread` list)
/// without following a link planted in its place: in a shared folder another user's
/// `results.csv.lock -> /some/root-owned/file` would otherwise be written through (and cut
/// down) when root runs the tool. A symbolic link, or a file with other names (a hard link), is
/// refused with an error naming it. `options` must not truncate (the checks come after the
/// open): `empty` empties the file once it is known to be the tool's own.
pub(crate) fn open_side_file(
    path: &Path,
    options: &mut OpenOptions,
    empty: bool,
) -> io::Result<File> {
    let refused = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is {what}; pc-qualify writes its own files there and never through a link (remove it)",
                path.display()
            ),
        )
    };
    #[cfg(unix)]
    let file = {
        use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
        // O_NONBLOCK: a FIFO planted in the file's place fails the open (ENXIO, no reader)
        // instead of blocking the runtime's thread; regular files ignore it.
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        let file = options.open(path).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::EMLINK) => refused("a symbolic link"),
            Some(libc::ENXIO) => refused("not a regular file"),
            _ => e,
        })?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(refused("not a regular file"));
        }
        if meta.nlink() > 1 {
            return Err(refused("a file with other names (a hard link)"));
        }
        file
    };
    #[cfg(not(unix))]
    let file = {
        // No O_NOFOLLOW: look first (a link planted between the look and the open is the one
        // case left, and creating links on Windows needs a privilege a plain user lacks).
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(refused("a symbolic link"));
        }
        options.open(path)?
    };
    if empty {
        file.set_len(0)?;
    }
    Ok(file)
}

/// What a settings or metrics file may hold: far more than any written by hand or by us.
pub(crate) const SMALL_FILE: u64 = 1 << 20;
/// What a file listing customers (export's `.unread`, a simulator preload) may hold.
pub(crate) const LIST_FILE: u64 = 64 << 20;

/// A small file's whole text, refused past `limit` bytes: a wrong path (a log, a device, a
/// huge file) fails with a reason instead of filling memory.
pub(crate) fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    let mut text = String::new();
    File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_string(&mut text)?;
    match u64::try_from(text.len()) {
        Ok(n) if n <= limit => Ok(text),
        _ => Err(too_large(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_text_file_is_read_up_to_its_limit_and_refused_past_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("settings.toml");
        std::fs::write(&path, "12345").expect("write");
        assert_eq!(read_text(&path, 5).expect("at the limit"), "12345");
        let err = read_text(&path, 4).expect_err("past the limit");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), "larger than 4 bytes");
    }

    #[test]
    fn replaces_whole_with_the_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("pc_qualify.prom");
        std::fs::write(&path, "old contents that are longer than the new ones\n").expect("seed");
        replace(&path, 0o640, |f| f.write_all(b"new\n")).expect("replace");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("pc_qualify.prom")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o640);
        }
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "old").expect("seed");
        let failed = replace(&path, 0o600, |f| {
            f.write_all(b"half")?;
            Err::<(), _>(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn an_uncommitted_replacement_leaves_the_file_and_a_new_one_clobbers_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("results.csv");
        std::fs::write(&path, "old").expect("seed");
        let mut half = Replacement::new(&path, 0o644).expect("new");
        half.write_all(b"half").expect("write");
        drop(half);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
        let mut late = Replacement::new(&path, 0o644).expect("new");
        late.write_all(b"new").expect("write");
        assert!(late.commit(false).is_err(), "a file appeared meanwhile");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_still_open_is_not_replaced_as_on_windows() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("results.csv");
        std::fs::write(&path, "old").expect("seed");
        let open = File::open(&path).expect("open");
        let err = replace(&path, 0o644, |f| f.write_all(b"new")).expect_err("held open");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        drop(open);
        replace(&path, 0o644, |f| f.write_all(b"new")).expect("closed");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
    }

    #[test]
    fn a_missing_folder_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("absent").join("file");
        assert!(replace(&path, 0o644, |f| f.write_all(b"x")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_side_file_is_never_opened_through_a_link() {
        let dir = tempfile::tempdir().expect("dir");
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").expect("write");
        let symlink = dir.path().join("out.csv.lock");
        std::os::unix::fs::symlink(&target, &symlink).expect("symlink");
        let hard = dir.path().join("out.csv.journal");
        std::fs::hard_link(&target, &hard).expect("hard link");
        for planted in [&symlink, &hard] {
            let err = open_side_file(planted, OpenOptions::new().write(true).create(true), true)
                .expect_err("a link is refused");
            assert!(err.to_string().contains("never through a link"), "{err}");
        }
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep me");
        let own = dir.path().join("own.lock");
        open_side_file(&own, OpenOptions::new().write(true).create(true), true).expect("new");
        // A FIFO in the file's place is refused at once, not waited on (no reader ever comes).
        let fifo = dir.path().join("out.csv.timeline");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.expect("mkfifo runs").success());
        let err = open_side_file(&fifo, OpenOptions::new().write(true).create(true), false)
            .expect_err("a FIFO is refused");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
