//! Temporary restic repositories for tests: a temp dir holding a repository
//! path, its password, source folders to back up, and helpers that run the
//! real `restic` (0.14 from Debian in CI; `RESTIC_BINARY` overrides) to set
//! up or inspect a repository behind the agent's back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use restic_manager::agent::restic::RepoSettings;
use restic_manager::protocol::ConfigUpdate;
use tempfile::TempDir;

/// The restic binary under test.
pub fn restic_binary() -> PathBuf {
    std::env::var_os("RESTIC_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("restic"))
}

/// Panics with a clear message when restic is not installed: these tests
/// exist to drive the real binary (scripts/test installs it).
pub fn require_restic() {
    let output = Command::new(restic_binary()).arg("version").output();
    match output {
        Ok(output) if output.status.success() => {}
        other => panic!(
            "restic is required for this test (apt-get install restic, or set RESTIC_BINARY): {other:?}"
        ),
    }
}

/// A temp dir with a repository location (not initialised until
/// [`init`](Self::init)), its password and room for source folders.
pub struct TempRepo {
    /// Holds everything; removed on drop.
    pub dir: TempDir,
    /// The repository path (`RESTIC_REPOSITORY`).
    pub repo: PathBuf,
    /// The repository password, unique per repo so a test can grep for it.
    pub password: String,
}

impl TempRepo {
    /// A fresh location with a random password.
    pub fn new() -> Self {
        require_restic();
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        Self {
            dir,
            repo,
            password,
        }
    }

    /// The `config.update` that points an agent at this repository.
    pub fn config_update(&self) -> ConfigUpdate {
        ConfigUpdate {
            repo_url: Some(self.repo.to_string_lossy().into_owned()),
            repo_password: Some(self.password.clone()),
            ..ConfigUpdate::default()
        }
    }

    /// The same settings, applied.
    pub fn settings(&self) -> RepoSettings {
        let mut settings = RepoSettings::default();
        settings.apply(&self.config_update());
        settings
    }

    /// A restic command on this repository (credentials in the env).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(restic_binary());
        command
            .args(args)
            .env("RESTIC_REPOSITORY", &self.repo)
            .env("RESTIC_PASSWORD", &self.password)
            .env("RESTIC_CACHE_DIR", self.dir.path().join("cache"));
        command
    }

    /// Runs restic on this repository and returns its output.
    pub fn restic(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("restic runs")
    }

    /// A new repository here, as `restic init` makes it but with a key
    /// that is cheap to derive: a copy of the process's template repository
    /// ([`super::restic_key::init`]).
    pub fn init(&self) {
        super::restic_key::init(&self.repo, &self.password);
    }

    /// `restic snapshots --json` as JSON values.
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        let output = self.restic(&["snapshots", "--json", "--no-lock"]);
        assert!(output.status.success(), "restic snapshots: {output:?}");
        serde_json::from_slice(&output.stdout).expect("snapshots JSON")
    }

    /// The lock files in the repository.
    pub fn lock_files(&self) -> Vec<PathBuf> {
        lock_files_in(&self.repo)
    }

    /// What each lock file of the repository says (`restic cat lock`: its
    /// pid, time and whether it is exclusive) and whether that process
    /// still runs (its command line), for the message of a failed
    /// assertion that no lock is left; empty when there is none.
    pub fn lock_report(&self) -> String {
        self.lock_files()
            .iter()
            .map(|path| {
                let id = path.file_name().unwrap().to_string_lossy().into_owned();
                let output = self.restic(&["cat", "lock", &id, "--no-lock"]);
                let pid = serde_json::from_slice::<serde_json::Value>(&output.stdout)
                    .ok()
                    .and_then(|lock| lock["pid"].as_u64());
                let owner =
                    match pid.and_then(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok()) {
                        Some(cmdline) => format!(
                            "its process runs: {}",
                            String::from_utf8_lossy(&cmdline).replace('\0', " ")
                        ),
                        None => "its process is gone".to_owned(),
                    };
                format!(
                    "{id} ({owner}): {}{}",
                    String::from_utf8_lossy(&output.stdout).trim(),
                    String::from_utf8_lossy(&output.stderr).trim()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A source folder `name` holding small text files.
    pub fn source(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.dir.path().join(name);
        for (path, content) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, content).expect("write");
        }
        std::fs::create_dir_all(&root).expect("mkdir");
        root
    }

    /// A source folder holding one sparse file of `size` bytes: restic
    /// reads (and hashes) every zero, so its backup takes a while, but the
    /// disk holds almost nothing.
    pub fn slow_source(&self, name: &str, size: u64) -> PathBuf {
        let root = self.dir.path().join(name);
        std::fs::create_dir_all(&root).expect("mkdir");
        let file = std::fs::File::create(root.join("sparse.bin")).expect("create");
        file.set_len(size).expect("set_len");
        root
    }

    /// Leaves a stale lock made by restic itself: a `backup --stdin` takes
    /// the lock and waits for input, and is killed with SIGKILL so it
    /// cannot remove it.
    pub fn make_stale_lock(&self) {
        self.stale_lock_maker()();
    }

    /// [`TempRepo::make_stale_lock`] as a closure owning what it needs, to
    /// run off an async test's thread ([`crate::common::off_thread`]).
    pub fn stale_lock_maker(&self) -> impl FnOnce() + Send + 'static {
        let mut command = self.command(&["backup", "--stdin", "--stdin-filename", "held.txt"]);
        let repo = self.repo.clone();
        move || {
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("restic backup --stdin");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(b"some bytes").expect("write stdin");
            // Wait for a complete lock file (restic writes it in place, so
            // an empty one may be seen first), then give restic time to
            // finish the write before the kill.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !lock_files_in(&repo)
                .iter()
                .any(|path| std::fs::metadata(path).is_ok_and(|meta| meta.len() > 0))
            {
                assert!(Instant::now() < deadline, "restic never took its lock");
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_secs(1));
            child.kill().expect("kill restic");
            child.wait().expect("reap restic");
            drop(stdin);
            assert!(
                !lock_files_in(&repo).is_empty(),
                "the lock should be left behind"
            );
        }
    }
}

/// The lock files in the repository at `repo`: the files of `locks/`
/// named by an ID (64 hex digits). restic's local backend writes a file
/// as `<id>-tmp-<random>` and renames it once written; a restic
/// interrupted in between (the agent's SIGINT after a failed dump, in the
/// window while restic writes its lock) leaves that temporary file, which
/// is no lock: restic lists only files named by an ID as locks, so no
/// later command sees it or waits for it.
fn lock_files_in(repo: &Path) -> Vec<PathBuf> {
    let is_id = |name: &str| name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
    match std::fs::read_dir(repo.join("locks")) {
        Ok(entries) => entries
            .map(|e| e.expect("dir entry").path())
            .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(is_id))
            .collect(),
        Err(_) => Vec::new(),
    }
}
