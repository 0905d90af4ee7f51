//! The real `restic-manager-agent` binary as a separate process, for the
//! fault tests that need what an in-process agent cannot give: a real
//! `kill -9`, with restic outliving its parent. Enrolled with the binary's
//! own `enroll` command, started with `run --config … --state-dir …`, its
//! log (tracing at debug level) written to a file the failure messages
//! quote.
//!
//! Every process call here is async (tokio::process): the test server runs
//! on the same thread, so a blocking wait would stall it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use restic_manager::agent::journal::{JobRecord, JobState};
use restic_manager::agent::{AgentConfig, HooksConfig};

use super::server::TestApp;

/// The agent binary: `restic-manager-agent` built for this test run,
/// unless `RESTIC_MANAGER_AGENT_BINARY` names another (a copy taken right
/// after the build when several checkouts share one target directory,
/// where another checkout's build can replace `target/debug/restic-manager-agent`
/// between this build and the run).
///
/// The agent is its own package of the workspace (`agent/`), and cargo
/// gives a test `CARGO_BIN_EXE_*` only for its own package's binaries; so
/// the first call runs `cargo build --bin restic-manager-agent` (in the
/// profile of this test binary, a no-op when it is up to date) and takes
/// the path cargo reports. A test that spawns the agent therefore never
/// runs a stale one, whatever `cargo test` filter built this binary.
pub fn agent_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| match std::env::var_os("RESTIC_MANAGER_AGENT_BINARY") {
            Some(path) => PathBuf::from(path),
            None => build_agent(),
        })
        .clone()
}

/// Builds the agent binary with the cargo that builds these tests, in
/// their profile, and returns the executable cargo reports.
fn build_agent() -> PathBuf {
    let mut command = std::process::Command::new(env!("CARGO"));
    command.args([
        "build",
        "--manifest-path",
        concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        "--bin",
        "restic-manager-agent",
        "--message-format",
        "json-render-diagnostics",
    ]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let output = command.stderr(Stdio::inherit()).output().unwrap();
    assert!(
        output.status.success(),
        "cargo build --bin restic-manager-agent failed ({})",
        output.status
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == "restic-manager-agent")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the restic-manager-agent executable")
}

/// An enrolled agent (config and state directory), not yet running.
#[derive(Debug, Clone)]
pub struct EnrolledAgent {
    pub host_id: String,
    pub config_path: PathBuf,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
}

/// Runs `restic-manager-agent enroll --server <server_url>` with a fresh
/// token; everything lives under `dir`. `server_url` may differ from the
/// app's own (a proxy in front of it).
pub async fn enroll(app: &TestApp, server_url: &str, dir: &Path) -> EnrolledAgent {
    let token = app.enrollment_token().await;
    let config_path = dir.join("agent.toml");
    let output = tokio::process::Command::new(agent_binary())
        .args(["enroll", "--server", server_url, "--config"])
        .arg(&config_path)
        .env("RESTIC_MANAGER_ENROLL_TOKEN", &token)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "agent enroll failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config = AgentConfig::load(&config_path).unwrap();
    EnrolledAgent {
        host_id: config.host_id,
        config_path,
        state_dir: dir.join("state"),
        log_path: dir.join("agent.log"),
    }
}

impl EnrolledAgent {
    /// Sets the hooks of the agent's config file.
    pub fn set_hooks(&self, hooks: HooksConfig) {
        let mut config = AgentConfig::load(&self.config_path).unwrap();
        config.hooks = hooks;
        config.save(&self.config_path).unwrap();
    }

    /// Starts `restic-manager-agent run`, appending to the log file.
    pub fn spawn(&self) -> AgentProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let child = tokio::process::Command::new(agent_binary())
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .env("RESTIC_MANAGER_LOG", "restic_manager=debug,info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        AgentProcess {
            child,
            agent: self.clone(),
        }
    }

    /// The agent's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The journal's records, read straight from the files (the running
    /// agent owns the journal; this only reads).
    pub fn journal_records(&self) -> Vec<JobRecord> {
        json_files(&self.state_dir.join("jobs"))
            .iter()
            .map(|text| serde_json::from_str(text).unwrap())
            .collect()
    }

    /// The journal record of job `id`, if any.
    pub fn journal_record(&self, id: &str) -> Option<JobRecord> {
        self.journal_records()
            .into_iter()
            .find(|record| record.job_id() == id)
    }

    /// How many envelopes wait in the agent's outbox, by message type.
    pub fn outbox_types(&self) -> Vec<String> {
        json_files(&self.state_dir.join("outbox"))
            .iter()
            .map(|text| {
                let entry: serde_json::Value = serde_json::from_str(text).unwrap();
                let frame: serde_json::Value =
                    serde_json::from_str(entry["frame"].as_str().unwrap()).unwrap();
                frame["type"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}

/// Whether a journal record is finished and acknowledged by the server.
pub fn is_acked(record: &JobRecord) -> bool {
    matches!(record.state, JobState::Finished { acked: true, .. })
}

/// The contents of the `*.json` files of `dir` (none if it is missing).
fn json_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        // The agent's atomic writes go through `.tmp-*` files.
        .filter(|path| {
            !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(restic_manager::agent::platform::TEMP_PREFIX)
        })
        // A file renamed away between listing and reading is skipped.
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .collect()
}

/// A running agent process (killed when dropped).
pub struct AgentProcess {
    child: tokio::process::Child,
    pub agent: EnrolledAgent,
}

impl AgentProcess {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// `kill -9`, and reaps the process.
    pub async fn kill9(mut self) {
        self.child.start_kill().unwrap();
        let status = self.child.wait().await.unwrap();
        assert!(!status.success(), "killed agent exited with {status}");
    }

    /// SIGTERM (a service stop), and waits for a clean exit.
    pub async fn terminate(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(std::time::Duration::from_secs(60), self.child.wait())
            .await
            .expect("agent exits after SIGTERM")
            .unwrap();
        assert!(
            status.success(),
            "agent exited with {status}; log:\n{}",
            self.agent.log()
        );
    }
}

/// Live processes (zombies excluded) whose command line contains `needle`
/// as one argument, e.g. the unique source path of a test's backup.
pub fn processes_with_arg(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may end between listing and reading: skip it.
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let has_arg = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == needle.as_bytes());
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| {
                let rest = &stat[stat.rfind(')')? + 1..];
                rest.split_whitespace().next().map(|state| state == "Z")
            })
            .unwrap_or(true);
        if has_arg && !zombie {
            pids.push(pid);
        }
    }
    pids
}
