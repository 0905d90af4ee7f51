//! The agent's configuration file, `agent.toml`: where the server is, who this
//! host is to it, and local settings (state directory, restic binary, hooks).
//!
//! Written by `restic-manager-agent enroll` (mode 0600: it holds the agent
//! token), read by `restic-manager-agent run`. Defaults:
//! `/etc/restic-manager/agent.toml` and state in `/var/lib/restic-manager`
//! on Unix, `%ProgramData%\restic-manager\…` on Windows (see
//! [`platform`](super::platform)).
//!
//! ```toml
//! server_url = "https://backup.example.com"
//! host_id = "0193…"
//! agent_token = "…"                      # secret: Debug prints ***
//! ca_file = "/etc/restic-manager/ca.pem" # optional extra trust root
//! state_dir = "/var/lib/restic-manager"  # optional
//! restic_binary = "restic"               # optional
//! allow_insecure_ws = false              # ws:// to a non-loopback server
//! allowed_repositories = ["s3:https://s3.example.com/backups/*"] # optional
//! hostname = "web-1"                     # optional: default the system's
//!
//! [hooks]                                # optional
//! pre = "pg_dump mydb > /var/backups/mydb.sql"
//! post = "rm -f /var/backups/mydb.sql"
//! kinds = ["backup"]
//! timeout_seconds = 3600
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::platform;
use crate::protocol::JobKind;

/// Restic binary used when the config names none: found on `PATH`.
pub const DEFAULT_RESTIC_BINARY: &str = "restic";

/// Longest a hook may run when the config sets no timeout (one hour).
pub const DEFAULT_HOOK_TIMEOUT_SECONDS: u64 = 3600;

/// A secret string (agent token, repository password). `Debug` and
/// `Display` print `***`; the value is reached only through
/// [`expose`](Self::expose).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Pre/post job hooks, run with the `hook_shell` of `config.update` (or the
/// platform's shell). A failing pre hook fails the job before restic runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    /// Command run before restic; a non-zero exit fails the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre: Option<String>,
    /// Command run after restic, whatever its outcome; its failure is a
    /// warning on the job, not a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post: Option<String>,
    /// Job kinds the hooks run for (default: backups only).
    #[serde(default = "default_hook_kinds")]
    pub kinds: Vec<JobKind>,
    /// A hook still running after this many seconds is killed and fails.
    #[serde(default = "default_hook_timeout")]
    pub timeout_seconds: u64,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            pre: None,
            post: None,
            kinds: default_hook_kinds(),
            timeout_seconds: DEFAULT_HOOK_TIMEOUT_SECONDS,
        }
    }
}

impl HooksConfig {
    /// Whether any hook is configured for jobs of `kind`.
    pub fn applies_to(&self, kind: JobKind) -> bool {
        (self.pre.is_some() || self.post.is_some()) && self.kinds.contains(&kind)
    }
}

fn default_hook_kinds() -> Vec<JobKind> {
    vec![JobKind::Backup]
}

fn default_hook_timeout() -> u64 {
    DEFAULT_HOOK_TIMEOUT_SECONDS
}

/// Everything `restic-manager-agent run` needs, as stored in `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The server's base URL (`https://host[:port]`), or its WebSocket URL.
    pub server_url: String,
    /// This host's id on the server (from enrolment).
    pub host_id: String,
    /// The bearer token for the WebSocket upgrade (secret).
    pub agent_token: Secret,
    /// A PEM file of extra CA certificates to trust besides the web PKI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Where the job journal, outbox and schedule live.
    #[serde(default = "platform::default_state_dir")]
    pub state_dir: PathBuf,
    /// The restic executable (a path, or a name looked up on `PATH`).
    #[serde(default = "default_restic_binary")]
    pub restic_binary: PathBuf,
    /// Allow `ws://` (no TLS) to a server that is not on a loopback address.
    #[serde(default)]
    pub allow_insecure_ws: bool,
    /// Glob patterns (`*`, `?`, `[…]`; `*` also matches `/`) of the
    /// repository URLs this agent accepts from the server. Empty: any. A
    /// `config.update` or a restore naming another URL is refused, so a
    /// compromised server cannot have this host's files backed up to a
    /// repository of its choosing (issue 15 B.10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_repositories: Vec<String>,
    /// Pre/post job hooks.
    #[serde(default)]
    pub hooks: HooksConfig,
    /// The host name told to the server and given to restic (`--host` on
    /// backup, forget and snapshots, so hosts sharing a repository see
    /// only their own snapshots); default: the system's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Seconds after a backup schedule was due that the agent waits for
    /// the server to turn the fire into jobs; when the server is still
    /// unreachable then, the agent runs the backup itself (issue 14 §6).
    #[serde(default = "default_offline_grace_seconds")]
    pub offline_grace_seconds: u64,
    /// Seconds between two collections of `snapshots.report` and
    /// `repo.stats` at the longest (they also follow every backup and
    /// forget); at least 60. Also read as `report_interval`.
    #[serde(default = "default_report_interval_seconds", alias = "report_interval")]
    pub report_interval_seconds: u64,
    /// The Docker Engine whose containers are discovered (issue 13 §2):
    /// `unix:///run/docker.sock`, `npipe:////./pipe/docker_engine`,
    /// `tcp://host:2375`; default: `DOCKER_HOST`, else the platform's
    /// socket or named pipe. Discovery is on when it answers at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_host: Option<String>,
}

/// Default of `report_interval_seconds`: an hour.
pub const DEFAULT_REPORT_INTERVAL_SECONDS: u64 = 3600;

fn default_report_interval_seconds() -> u64 {
    DEFAULT_REPORT_INTERVAL_SECONDS
}

/// Default of `offline_grace_seconds`: ten minutes.
pub const DEFAULT_OFFLINE_GRACE_SECONDS: u64 = 600;

fn default_offline_grace_seconds() -> u64 {
    DEFAULT_OFFLINE_GRACE_SECONDS
}

fn default_restic_binary() -> PathBuf {
    PathBuf::from(DEFAULT_RESTIC_BINARY)
}

/// Why `agent.toml` could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid agent config.
    #[error("{path}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong (TOML parser message; never a secret value).
        message: String,
    },
    /// The config could not be encoded.
    #[error("cannot encode the agent config: {0}")]
    Encode(#[from] toml::ser::Error),
}

impl AgentConfig {
    /// A config for a freshly enrolled host with every local default.
    pub fn new(server_url: impl Into<String>, host_id: impl Into<String>, token: Secret) -> Self {
        Self {
            server_url: server_url.into(),
            host_id: host_id.into(),
            agent_token: token,
            ca_file: None,
            state_dir: platform::default_state_dir(),
            restic_binary: default_restic_binary(),
            allow_insecure_ws: false,
            allowed_repositories: Vec::new(),
            hooks: HooksConfig::default(),
            hostname: None,
            offline_grace_seconds: DEFAULT_OFFLINE_GRACE_SECONDS,
            report_interval_seconds: DEFAULT_REPORT_INTERVAL_SECONDS,
            docker_host: None,
        }
    }

    /// Whether this agent may use the repository at `url`: an sftp host
    /// that ssh would read as an option never (issue 15 B.9); otherwise
    /// any URL when `allowed_repositories` is empty, else one matching a
    /// pattern. The error is the reason, with the URL's password hidden.
    pub fn repository_allowed(&self, url: &str) -> Result<(), String> {
        crate::repo_url::check_sftp(url).map_err(|e| e.to_string())?;
        if self.allowed_repositories.is_empty() {
            return Ok(());
        }
        let allowed = self
            .allowed_repositories
            .iter()
            .any(|pattern| glob::Pattern::new(pattern).is_ok_and(|pattern| pattern.matches(url)));
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "the repository {} matches no allowed_repositories pattern of agent.toml",
                crate::redact::url(url)
            ))
        }
    }

    /// The host name this agent goes by: the configured one, else the
    /// system's.
    pub fn hostname(&self) -> String {
        self.hostname
            .clone()
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(platform::hostname)
    }

    /// Parses the TOML text of an agent config; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|err| ConfigError::Invalid {
            path: path.to_owned(),
            // toml's message quotes the offending line, which may be the
            // token's line: keep only the first line (what is wrong).
            message: err.message().lines().next().unwrap_or("invalid").to_owned(),
        })?;
        config.check(path)?;
        Ok(config)
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Writes the config to `path` with mode 0600, atomically (temp file,
    /// fsync, rename), creating the parent directory.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self)?;
        let io = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        platform::write_private_file_atomically(path, text.as_bytes()).map_err(io)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: &str| {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                message: message.to_owned(),
            })
        };
        if self.server_url.trim().is_empty() {
            return invalid("server_url is empty");
        }
        if self.host_id.trim().is_empty() {
            return invalid("host_id is empty");
        }
        if self.agent_token.is_empty() {
            return invalid("agent_token is empty");
        }
        for pattern in &self.allowed_repositories {
            if let Err(e) = glob::Pattern::new(pattern) {
                return invalid(&format!(
                    "allowed_repositories: {pattern:?} is not a glob pattern: {e}"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A saved config loads back equal, with mode 0600 on Unix.
    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("agent.toml");
        let mut config = AgentConfig::new("https://s.example", "h1", Secret::new("tok-123"));
        config.ca_file = Some(PathBuf::from("/etc/ca.pem"));
        config.hooks.pre = Some("echo hi".to_owned());
        config.save(&path).unwrap();
        assert_eq!(AgentConfig::load(&path).unwrap(), config);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// Missing optional keys take their defaults.
    #[test]
    fn defaults_for_optional_keys() {
        let config = AgentConfig::parse(
            "server_url = \"http://127.0.0.1:8080\"\nhost_id = \"h\"\nagent_token = \"t\"\n",
            Path::new("agent.toml"),
        )
        .unwrap();
        assert_eq!(config.state_dir, platform::default_state_dir());
        assert_eq!(config.restic_binary, PathBuf::from("restic"));
        assert!(!config.allow_insecure_ws);
        assert_eq!(config.hooks, HooksConfig::default());
        assert!(!config.hooks.applies_to(JobKind::Backup));
        assert_eq!(config.offline_grace_seconds, DEFAULT_OFFLINE_GRACE_SECONDS);
        let short = AgentConfig::parse(
            "server_url = \"s\"\nhost_id = \"h\"\nagent_token = \"t\"\noffline_grace_seconds = 2\n",
            Path::new("agent.toml"),
        )
        .unwrap();
        assert_eq!(short.offline_grace_seconds, 2);
        assert_eq!(
            config.report_interval_seconds,
            DEFAULT_REPORT_INTERVAL_SECONDS
        );
        let hourly = AgentConfig::parse(
            "server_url = \"s\"\nhost_id = \"h\"\nagent_token = \"t\"\nreport_interval = 7200\n",
            Path::new("agent.toml"),
        )
        .unwrap();
        assert_eq!(hourly.report_interval_seconds, 7200);
    }

    /// `Debug` never shows the agent token, and parse errors do not quote it.
    #[test]
    fn token_is_never_shown() {
        let config = AgentConfig::new("https://s", "h", Secret::new("very-secret-token"));
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret-token"), "{shown}");
        assert!(shown.contains("***"));

        let err = AgentConfig::parse(
            "server_url = \"x\"\nhost_id = \"h\"\nagent_token = 5 # very-secret-token\n",
            Path::new("a.toml"),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("very-secret-token"), "{err}");
    }

    /// Empty identity fields and unknown keys are rejected.
    #[test]
    fn invalid_configs_are_rejected() {
        for text in [
            "server_url = \"\"\nhost_id = \"h\"\nagent_token = \"t\"\n",
            "server_url = \"s\"\nhost_id = \" \"\nagent_token = \"t\"\n",
            "server_url = \"s\"\nhost_id = \"h\"\nagent_token = \"\"\n",
            "server_url = \"s\"\nhost_id = \"h\"\nagent_token = \"t\"\nbogus = 1\n",
        ] {
            assert!(
                matches!(
                    AgentConfig::parse(text, Path::new("a.toml")),
                    Err(ConfigError::Invalid { .. })
                ),
                "{text}"
            );
        }
    }

    /// `allowed_repositories`: glob patterns, checked on every URL the
    /// server sends; an invalid pattern is a config error; sftp hosts
    /// starting with '-' are refused even without a list (B.9, B.10).
    #[test]
    fn allowed_repositories() {
        let base = "server_url = \"s\"\nhost_id = \"h\"\nagent_token = \"t\"\n";
        let open = AgentConfig::parse(base, Path::new("a.toml")).unwrap();
        assert!(open.repository_allowed("/anywhere").is_ok());
        assert!(open
            .repository_allowed("sftp:-oProxyCommand=sh:/repo")
            .unwrap_err()
            .contains("'-'"));
        let text = format!(
            "{base}allowed_repositories = [\"s3:https://s3.example.com/backups/*\", \"/srv/restic/*\"]\n"
        );
        let listed = AgentConfig::parse(&text, Path::new("a.toml")).unwrap();
        assert!(listed
            .repository_allowed("s3:https://s3.example.com/backups/web-01")
            .is_ok());
        assert!(listed.repository_allowed("/srv/restic/web/01").is_ok());
        let refused = listed
            .repository_allowed("rest:https://u:secret@evil.example/steal")
            .unwrap_err();
        assert!(
            refused.contains("allowed_repositories") && !refused.contains("secret"),
            "{refused}"
        );
        let bad = format!("{base}allowed_repositories = [\"[oops\"]\n");
        let err = AgentConfig::parse(&bad, Path::new("a.toml")).unwrap_err();
        assert!(err.to_string().contains("allowed_repositories"), "{err}");
        // Saved and loaded back with the list.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        listed.save(&path).unwrap();
        assert_eq!(AgentConfig::load(&path).unwrap(), listed);
    }

    /// Hooks apply to the configured kinds only.
    #[test]
    fn hooks_apply_to_configured_kinds() {
        let hooks = HooksConfig {
            pre: Some("true".to_owned()),
            kinds: vec![JobKind::Backup, JobKind::Prune],
            ..HooksConfig::default()
        };
        assert!(hooks.applies_to(JobKind::Backup));
        assert!(hooks.applies_to(JobKind::Prune));
        assert!(!hooks.applies_to(JobKind::Check));
    }
}
