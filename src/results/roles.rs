//! One path, one role: the files a command reads and writes (input, output, the lock, journal and
//! timeline beside the output, metrics, report, config) must be different files, however they are
//! spelled. Checked before anything is opened for writing; `--force` never overrides it.

use std::path::{Path, PathBuf};

use crate::results::lock::{lock_path, resolve};
use crate::results::resume::journal_path;
use crate::results::timeline::timeline_path;
use crate::results::ResultsError;

/// A file a command names or keeps beside another, with the name the user knows it by.
pub struct Role {
    /// `--input`, `--metrics`, `the lock file of --output`, ...
    pub name: String,
    /// As given (or derived).
    pub path: PathBuf,
}

impl Role {
    /// The file `path` in the role `name`; `-` (standard input or output) takes no part.
    pub fn new(name: impl Into<String>, path: impl AsRef<Path>) -> Role {
        Role {
            name: name.into(),
            path: path.as_ref().to_path_buf(),
        }
    }

    /// The results file named by `flag` and the lock file, journal and timeline kept beside it (none
    /// beside standard output).
    pub fn results(flag: &str, path: &str) -> Vec<Role> {
        let mut roles = vec![Role::new(flag, path)];
        if path != "-" {
            let beside = [
                ("lock file", lock_path(Path::new(path))),
                ("journal", journal_path(path)),
                ("timeline", timeline_path(path)),
            ];
            roles.extend(
                beside.map(|(what, side)| Role::new(format!("the {what} of {flag}"), side)),
            );
        }
        roles
    }
}

/// Whether the file systems of the platform built for match names regardless of case, as
/// Windows's (NTFS) and macOS's (APFS, HFS+) do unless formatted otherwise: there `Out.csv` and
/// `out.csv` are one file even before either exists.
const CASE_INSENSITIVE: bool = cfg!(any(windows, target_os = "macos"));

/// Refuses two roles that are one file: the same path once links and `..` are resolved (and,
/// on Windows and macOS, whatever the case of its letters), or, for a file that exists, the same
/// file under another name (a hard link, compared by device and inode, or Windows's file index,
/// through `same-file`). Standard input and output (`-`) and devices (`/dev/null`, a FIFO) take
/// no part: writing a device twice loses nothing.
pub fn check(roles: &[Role]) -> Result<(), ResultsError> {
    let files: Vec<_> = roles
        .iter()
        .filter(|role| role.path.as_os_str() != "-")
        .filter(|role| std::fs::metadata(&role.path).map_or(true, |meta| meta.is_file()))
        .map(|role| {
            let handle = same_file::Handle::from_path(&role.path).ok();
            // Files that exist are also compared by handle; the folding is what catches two
            // spellings of a file not created yet, which `resolve` leaves as typed.
            let path = folded(&resolve(&role.path), CASE_INSENSITIVE);
            (role, path, handle)
        })
        .collect();
    for (at, (first, path, handle)) in files.iter().enumerate() {
        for (second, other_path, other_handle) in &files[at + 1..] {
            let linked = matches!((handle, other_handle), (Some(a), Some(b)) if a == b);
            if path == other_path || linked {
                return Err(ResultsError::SameFile {
                    first: first.name.clone(),
                    second: second.name.clone(),
                    path: first.path.display().to_string(),
                    other: second.path.display().to_string(),
                });
            }
        }
    }
    Ok(())
}

/// `path` as a case-insensitive file system compares names, when `case_insensitive`: each
/// character as its simple (one-character) upper case, as Windows's upcase table maps it (a
/// character whose upper case is longer, `ß`, stays). Otherwise `path` as it is.
fn folded(path: &Path, case_insensitive: bool) -> PathBuf {
    if !case_insensitive {
        return path.to_path_buf();
    }
    // A name that is not Unicode (unpaired UTF-16 surrogates) is compared as it is.
    let Some(text) = path.to_str() else {
        return path.to_path_buf();
    };
    let upper = |c: char| {
        let mut upper = c.to_uppercase();
        match (upper.next(), upper.next()) {
            (Some(one), None) => one,
            _ => c,
        }
    };
    PathBuf::from(text.chars().map(upper).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_in_two_roles_is_refused_however_it_is_spelled() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("in.csv");
        std::fs::write(&file, "x").expect("write");
        std::fs::create_dir(dir.path().join("sub")).expect("sub");
        let dotted = dir.path().join("sub").join("..").join("in.csv");
        let linked = dir.path().join("hard.csv");
        std::fs::hard_link(&file, &linked).expect("hard link");
        #[cfg_attr(not(unix), allow(unused_mut))]
        let mut spellings = vec![dotted, linked];
        #[cfg(unix)]
        {
            let symlink = dir.path().join("sym.csv");
            std::os::unix::fs::symlink(&file, &symlink).expect("symlink");
            spellings.push(symlink);
        }
        for other in spellings {
            let err = check(&[Role::new("--input", &file), Role::new("--output", &other)])
                .expect_err("the same file");
            let text = err.to_string();
            assert!(text.contains("--input and --output"), "{text}");
        }
    }

    #[test]
    fn different_files_devices_and_standard_streams_pass() {
        let dir = tempfile::tempdir().expect("dir");
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        std::fs::write(&a, "x").expect("write");
        let mut roles = vec![Role::new("--input", &a)];
        roles.extend(Role::results("--output", &b.to_string_lossy()));
        roles.push(Role::new("--metrics", "-"));
        roles.push(Role::new("--html", "-"));
        check(&roles).expect("different files");
        #[cfg(unix)]
        check(&[
            Role::new("--output", "/dev/null"),
            Role::new("--metrics", "/dev/null"),
        ])
        .expect("a device may serve twice");
    }

    /// Two spellings of one file that does not exist yet were compared as typed, so on Windows
    /// and macOS `--output Out.csv --metrics out.csv` passed and the metrics replaced the results.
    #[test]
    fn names_differing_only_in_case_fold_together_where_the_file_system_ignores_case() {
        let (a, b) = (Path::new("C:/Work/Out.csv"), Path::new("c:/work/OUT.CSV"));
        assert_eq!(folded(a, true), folded(b, true));
        assert_ne!(folded(a, false), folded(b, false), "Linux tells them apart");
        assert_eq!(folded(a, false), a);
        // One character for one: an upper case of two characters (ß → SS) is not taken.
        assert_eq!(
            folded(Path::new("Straße.csv"), true),
            Path::new("STRAßE.CSV")
        );
        assert_eq!(
            folded(Path::new("ÉCOLE.csv"), true),
            folded(Path::new("école.csv"), true)
        );
    }

    #[cfg(any(windows, target_os = "macos"))]
    #[test]
    fn two_roles_on_one_file_not_created_yet_are_refused_whatever_the_case() {
        let dir = tempfile::tempdir().expect("dir");
        let roles = [
            Role::new("--output", dir.path().join("Out.csv")),
            Role::new("--metrics", dir.path().join("out.csv")),
        ];
        let err = check(&roles).expect_err("one file on this file system");
        assert!(err.to_string().contains("--output and --metrics"), "{err}");
    }

    #[test]
    fn a_side_file_named_as_another_role_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let out = dir.path().join("out.csv");
        let mut lock = out.clone().into_os_string();
        lock.push(".lock");
        let mut roles = vec![Role::new("--metrics", &lock)];
        roles.extend(Role::results("--output", &out.to_string_lossy()));
        let err = check(&roles).expect_err("metrics on the lock file");
        assert!(
            err.to_string()
                .contains("--metrics and the lock file of --output"),
            "{err}"
        );
    }
}
