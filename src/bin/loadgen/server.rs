//! The server under test when no `--server` is given: the
//! `restic-manager` binary next to this one, run as a child process on a
//! fresh data directory (SQLite) and a random port.
//!
//! Before it starts, the admin commands create a user, an API token for
//! the scenarios and the hosts (`host bulk-enroll`: one transaction rather
//! than an enrolment round trip per host; setup is not measured). The
//! server's stderr (its log) goes to `server.log` in the data directory,
//! which is removed at the end unless `--keep-data` is given.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::fleet::{parse_hosts_file, Credentials};

/// How long the server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopped server may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The user the scenarios act as.
const USERNAME: &str = "loadgen";

/// A `restic-manager serve` child process and its data directory.
pub struct OwnServer {
    bin: PathBuf,
    data_dir: PathBuf,
    child: Option<Child>,
    /// Where it listens (fixed after the first start, so a restart keeps it).
    pub addr: Option<SocketAddr>,
    pub api_token: String,
    keep_data: bool,
    /// `RESTIC_MANAGER_LOG` for the server.
    log_filter: String,
    /// `--database-url` for the server and its admin commands (default:
    /// SQLite in the data directory).
    database_url: Option<String>,
}

impl OwnServer {
    /// Creates the data directory, the user, the API token and `agents`
    /// hosts; returns the server (not started) and the hosts' credentials.
    pub fn prepare(
        agents: usize,
        keep_data: bool,
        log_filter: &str,
        database_url: Option<&str>,
    ) -> anyhow::Result<(OwnServer, Vec<Credentials>)> {
        let bin = server_binary()?;
        let data_dir =
            std::env::temp_dir().join(format!("restic-manager-loadgen-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let mut server = OwnServer {
            bin,
            data_dir,
            child: None,
            addr: None,
            api_token: String::new(),
            keep_data,
            log_filter: log_filter.to_owned(),
            database_url: database_url.map(str::to_owned),
        };
        let password = restic_manager::auth::generate_password()
            .map_err(|e| anyhow::anyhow!("cannot generate a password: {e}"))?;
        server.admin(
            &[
                "user",
                "add",
                "--username",
                USERNAME,
                "--role",
                "admin",
                "--password-stdin",
            ],
            Some(&password),
        )?;
        server.api_token = server
            .admin(
                &[
                    "api-token",
                    "create",
                    "--username",
                    USERNAME,
                    "--name",
                    "loadgen",
                ],
                None,
            )?
            .trim()
            .to_owned();
        let hosts_file = server.data_dir.join("hosts.tsv");
        let hosts = if agents > 0 {
            let count = agents.to_string();
            let file = hosts_file.display().to_string();
            server.admin(
                &[
                    "host",
                    "bulk-enroll",
                    "--count",
                    &count,
                    "--output",
                    &file,
                    "--hostname-prefix",
                    "loadgen",
                ],
                None,
            )?;
            let text = std::fs::read_to_string(&hosts_file)
                .with_context(|| format!("cannot read {}", hosts_file.display()))?;
            parse_hosts_file(&text)?
        } else {
            Vec::new()
        };
        Ok((server, hosts))
    }

    /// The data directory (database, key, log).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The database the server uses: `--database-url`, or the SQLite file
    /// in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            self.data_dir
                .join(restic_manager::config::DEFAULT_DB_FILE)
                .display()
                .to_string()
        })
    }

    /// `--data-dir DIR [--database-url URL]`, before any subcommand.
    fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command.arg("--data-dir").arg(&self.data_dir);
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        command
    }

    /// Runs one admin command on the data directory; returns its stdout.
    fn admin(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let mut child = self
            .command()
            .args(args)
            .env("RESTIC_MANAGER_LOG", "warn")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            writeln!(pipe, "{text}").context("cannot write to the admin command")?;
        }
        let output = child
            .wait_with_output()
            .context("the admin command failed")?;
        if !output.status.success() {
            bail!(
                "restic-manager {} failed: {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8(output.stdout).context("the admin command printed non-UTF-8")
    }

    /// Starts `serve` (on a random port the first time, the same port
    /// after); returns once it listens.
    pub fn start(&mut self) -> anyhow::Result<SocketAddr> {
        if self.child.is_some() {
            bail!("the server is running already");
        }
        let listen = self
            .addr
            .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
        let log_path = self.data_dir.join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut child = self
            .command()
            .args(["serve", "--listen", &listen])
            .env("RESTIC_MANAGER_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        self.child = Some(child);
        let (tx, rx) = mpsc::channel();
        // Reads stdout to the end so the server never blocks on a full
        // pipe; the first "listening on" line is the address.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("://").nth(1) {
                    if line.starts_with("listening on") {
                        if let Some(tx) = tx.take() {
                            // The receiver may have given up waiting.
                            let _ = tx.send(addr.trim().to_owned());
                        }
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                self.kill();
                bail!(
                    "the server did not start; see {}",
                    self.data_dir.join("server.log").display()
                );
            }
        };
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("the server printed an odd address {addr:?}"))?;
        self.addr = Some(addr);
        Ok(addr)
    }

    /// The server's process id.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .context("the server is not running")
    }

    /// Sends `signal` and waits for the process to exit; returns how long
    /// that took.
    pub fn stop(&mut self, signal: Signal) -> anyhow::Result<Duration> {
        let Some(mut child) = self.child.take() else {
            bail!("the server is not running");
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
        let start = Instant::now();
        kill(pid, signal).context("cannot signal the server")?;
        loop {
            if child
                .try_wait()
                .context("cannot wait for the server")?
                .is_some()
            {
                return Ok(start.elapsed());
            }
            if start.elapsed() >= STOP_TIMEOUT {
                // It did not stop in time: make sure it is gone, then say so.
                let _ = child.kill();
                let _ = child.wait();
                bail!("the server did not exit within {STOP_TIMEOUT:?} of {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Cleanup: errors mean it has exited already.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
        if self.keep_data {
            eprintln!("data kept in {}", self.data_dir.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.data_dir) {
            eprintln!("cannot remove {}: {e}", self.data_dir.display());
        }
    }
}

/// `restic-manager` next to this executable.
fn server_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find this executable")?;
    let bin = me
        .parent()
        .context("this executable has no directory")?
        .join("restic-manager");
    if !bin.is_file() {
        bail!(
            "{} not found: build it (cargo build --release --bins) or pass --server",
            bin.display()
        );
    }
    Ok(bin)
}
