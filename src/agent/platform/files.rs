//! The agent's files: crash-safe private writes, the directory fsync that
//! makes a rename durable, the state-directory lock, and on Windows the
//! ACL that stands in for mode 0600 ([`protect_agent_files`]).

use std::io::{self, Write};
use std::path::Path;
#[cfg(windows)]
use std::path::PathBuf;

#[cfg(windows)]
use super::default_agent_dir;
/// Writes `bytes` to `path` so that a crash leaves either the old or the new
/// content: a temp file beside it (mode 0600 on Unix; on Windows it takes
/// the directory's inherited ACL, which `service install` restricts through
/// `protect_agent_files`), fsync, rename over `path`, fsync of the directory.
pub fn write_private_file_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(TEMP_PREFIX);
    tmp_name.push(name);
    let tmp = dir.join(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: a leftover temp file is also swept at start-up.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Prefix of the temp files [`write_private_file_atomically`] leaves behind
/// if the process dies mid-write; start-up code deletes them.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Makes a rename or delete inside `dir` durable (fsync of the directory).
/// Windows cannot open a directory for syncing; NTFS journals renames.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// An exclusive lock on the state directory, held while the agent runs, so
/// that two agents never share a journal. Released on drop.
#[derive(Debug)]
pub struct StateLock {
    #[cfg(unix)]
    _lock: nix::fcntl::Flock<std::fs::File>,
    #[cfg(not(unix))]
    _file: std::fs::File,
}

impl StateLock {
    /// Takes the lock file `path`; fails at once (`WouldBlock`) if another
    /// process holds it.
    pub fn acquire(path: &Path) -> io::Result<Self> {
        /// `ERROR_SHARING_VIOLATION` (Windows): another handle has the file open.
        const ERROR_SHARING_VIOLATION: i32 = 32;
        let held = || {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "another restic-manager-agent uses this state directory",
            )
        };
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(windows)]
        {
            // Opened with no sharing, the file cannot be opened again until
            // this handle is closed (also when the process dies): the lock.
            use std::os::windows::fs::OpenOptionsExt;
            options.share_mode(0);
        }
        let file = options.open(path).map_err(|err| {
            if cfg!(windows) && err.raw_os_error() == Some(ERROR_SHARING_VIOLATION) {
                held()
            } else {
                err
            }
        })?;
        #[cfg(unix)]
        {
            use nix::fcntl::{Flock, FlockArg};
            let lock =
                Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
                    if errno == nix::errno::Errno::EWOULDBLOCK {
                        held()
                    } else {
                        io::Error::from(errno)
                    }
                })?;
            Ok(Self { _lock: lock })
        }
        #[cfg(not(unix))]
        {
            Ok(Self { _file: file })
        }
    }
}

/// The `icacls` arguments that give SYSTEM and the Administrators group
/// (well-known SIDs, so any Windows language works) full control of `path`
/// and nobody else any access: inherited entries are removed and the
/// existing explicit ones replaced. With `tree`, `path` is a directory whose
/// current contents get the same, and whose future contents inherit it.
#[cfg_attr(not(windows), allow(dead_code))]
fn icacls_arguments(path: &Path, tree: bool) -> Vec<std::ffi::OsString> {
    let grant = |sid: &str| {
        if tree {
            format!("*{sid}:(OI)(CI)F")
        } else {
            format!("*{sid}:F")
        }
    };
    let mut args: Vec<std::ffi::OsString> = vec![
        path.as_os_str().to_owned(),
        "/inheritance:r".into(),
        "/grant:r".into(),
        grant("S-1-5-18").into(),     // NT AUTHORITY\SYSTEM
        grant("S-1-5-32-544").into(), // BUILTIN\Administrators
    ];
    if tree {
        args.push("/T".into());
    }
    args.push("/Q".into());
    args
}

/// Whether `path` lies inside `dir` (component-wise, as given: a path
/// spelled differently is treated as outside, the safe answer here).
#[cfg_attr(not(windows), allow(dead_code))]
fn is_inside(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}

/// Restricts the agent's secrets to SYSTEM (the service's account) and
/// Administrators, which the 0600 mode does on Unix: the agent directory
/// under `%ProgramData%` as a whole (its default config, state and log,
/// and whatever is created there later) when the config or the state
/// directory lies in it, and the config file itself when it lies elsewhere.
/// A state directory elsewhere is left alone (the administrator who chose
/// it owns its permissions). Returns the paths whose ACL was replaced.
#[cfg(windows)]
pub fn protect_agent_files(config_path: &Path, state_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let agent_dir = default_agent_dir();
    let mut protected = Vec::new();
    if is_inside(config_path, &agent_dir) || is_inside(state_dir, &agent_dir) {
        std::fs::create_dir_all(&agent_dir)?;
        icacls(&agent_dir, true)?;
        protected.push(agent_dir.clone());
    }
    if !is_inside(config_path, &agent_dir) {
        icacls(config_path, false)?;
        protected.push(config_path.to_owned());
    }
    Ok(protected)
}

/// Runs `icacls` (from `%SystemRoot%\System32`, not from `PATH`).
#[cfg(windows)]
fn icacls(path: &Path, tree: bool) -> io::Result<()> {
    let program = std::env::var_os("SystemRoot")
        .map(|root| PathBuf::from(root).join("System32").join("icacls.exe"))
        .unwrap_or_else(|| PathBuf::from("icacls.exe"));
    let output = std::process::Command::new(program)
        .args(icacls_arguments(path, tree))
        .stdin(std::process::Stdio::null())
        .output()?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let said = if said.trim().is_empty() {
        String::from_utf8_lossy(&output.stdout)
    } else {
        said
    };
    Err(io::Error::other(format!(
        "icacls could not restrict {} ({}): {}",
        path.display(),
        output.status,
        said.trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An atomic write replaces the file and leaves no temp file behind.
    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_private_file_atomically(&path, b"one").unwrap();
        write_private_file_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.json")]);
    }

    /// A second lock on the same state directory is refused while the first
    /// is held, and granted after it is dropped.
    #[test]
    fn state_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.lock");
        let first = StateLock::acquire(&path).unwrap();
        let err = StateLock::acquire(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(first);
        StateLock::acquire(&path).unwrap();
    }

    /// icacls replaces the ACL with SYSTEM and Administrators only, by SID,
    /// inheritable and recursive for a directory tree.
    #[test]
    fn icacls_arguments_restrict_to_system_and_administrators() {
        let args = |path: &str, tree: bool| -> Vec<String> {
            icacls_arguments(Path::new(path), tree)
                .into_iter()
                .map(|arg| arg.into_string().unwrap())
                .collect()
        };
        assert_eq!(
            args(r"C:\ProgramData\restic-manager", true),
            [
                r"C:\ProgramData\restic-manager",
                "/inheritance:r",
                "/grant:r",
                "*S-1-5-18:(OI)(CI)F",
                "*S-1-5-32-544:(OI)(CI)F",
                "/T",
                "/Q"
            ]
        );
        assert_eq!(
            args(r"D:\agent.toml", false),
            [
                r"D:\agent.toml",
                "/inheritance:r",
                "/grant:r",
                "*S-1-5-18:F",
                "*S-1-5-32-544:F",
                "/Q"
            ]
        );
    }

    /// Only paths inside the agent's directory count as its own.
    #[test]
    fn inside_the_agent_directory() {
        let dir = Path::new("/data/restic-manager");
        assert!(is_inside(Path::new("/data/restic-manager/agent.toml"), dir));
        assert!(is_inside(Path::new("/data/restic-manager/state"), dir));
        assert!(!is_inside(Path::new("/data/restic-manager-other/x"), dir));
        assert!(!is_inside(Path::new("/etc/agent.toml"), dir));
    }
}
