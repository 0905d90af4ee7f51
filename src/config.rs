//! Server configuration: one place that knows every setting, where it comes
//! from and its default.
//!
//! Precedence is flags > `RESTIC_MANAGER_*` environment variables > the TOML
//! file named by `--config` > built-in defaults. clap resolves the first two
//! (every flag has an `env`), the file fills what is still unset, and
//! [`ServerConfig::resolve`] applies the defaults.
//!
//! Environment variables read here:
//! `RESTIC_MANAGER_CONFIG`, `RESTIC_MANAGER_DATA_DIR`, `RESTIC_MANAGER_DATABASE_URL`,
//! `RESTIC_MANAGER_KEY_FILE`, `RESTIC_MANAGER_LISTEN`, `RESTIC_MANAGER_TLS_CERT`,
//! `RESTIC_MANAGER_TLS_KEY`, `RESTIC_MANAGER_MAX_FRAME_BYTES`,
//! `RESTIC_MANAGER_MISSED_RUN_GRACE_SECONDS`, `RESTIC_MANAGER_POOL_SIZE`,
//! `RESTIC_MANAGER_POOL_CONNECTION_TIMEOUT_SECONDS`, `RESTIC_MANAGER_POOL_IDLE_TIMEOUT_SECONDS`,
//! `RESTIC_MANAGER_STATEMENT_TIMEOUT_SECONDS`, `RESTIC_MANAGER_DATABASE_APPLICATION_NAME`,
//! `RESTIC_MANAGER_LOG_RETENTION_DAYS`, `RESTIC_MANAGER_CATALOG_KEEP`,
//! `RESTIC_MANAGER_MAX_DOWNLOAD_BYTES`, `RESTIC_MANAGER_SESSION_IDLE_SECONDS`,
//! `RESTIC_MANAGER_SESSION_LIFETIME_SECONDS`, and, at first start only, `RESTIC_MANAGER_ADMIN_PASSWORD`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

mod pool;
use crate::agent_release::AgentRelease;

/// Default listen address of `serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory (database, key file).
pub const DEFAULT_DATA_DIR: &str = "./data";
/// SQLite file name inside the data directory.
pub const DEFAULT_DB_FILE: &str = "restic-manager.db";
/// Key file name inside the data directory.
pub const DEFAULT_KEY_FILE: &str = "secret.key";
/// Largest WebSocket frame accepted from an agent (PROTOCOL.md: 8 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;
/// How long after a cron time without a fire a run counts as missed.
pub const DEFAULT_MISSED_RUN_GRACE_SECONDS: u64 = 600;
/// Database connections in the pool.
pub const DEFAULT_POOL_SIZE: u32 = 8;
/// Days a finished job's log lines are kept (0: forever).
pub const DEFAULT_LOG_RETENTION_DAYS: u32 = 90;
/// Default `--max-download-bytes`: 10 GiB.
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 10 * 1024 * 1024 * 1024;
/// How long a browser session lives without activity (every use slides it).
pub const DEFAULT_SESSION_IDLE_SECONDS: u64 = 12 * 60 * 60;
/// How long a browser session lives at most, however active (issue 15 B.11).
pub const DEFAULT_SESSION_LIFETIME_SECONDS: u64 = 7 * 24 * 60 * 60;
/// The shortest idle time or lifetime a session may be given.
const MIN_SESSION_SECONDS: u64 = 60;
/// Time an agent has to say `hello` after connecting (PROTOCOL.md).
pub const DEFAULT_HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Time a browse waits for an agent's live listing (API.md: then 504).
pub const DEFAULT_LIVE_LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Options shared by every server subcommand (global flags).
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(
        long,
        global = true,
        env = "RESTIC_MANAGER_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database and the key file.
    #[arg(
        long,
        global = true,
        env = "RESTIC_MANAGER_DATA_DIR",
        value_name = "DIR"
    )]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `postgres://…` or a SQLite path (default: DATA_DIR/restic-manager.db).
    #[arg(
        long,
        global = true,
        env = "RESTIC_MANAGER_DATABASE_URL",
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    /// Key file for secrets at rest (default: DATA_DIR/secret.key).
    #[arg(
        long,
        global = true,
        env = "RESTIC_MANAGER_KEY_FILE",
        value_name = "FILE"
    )]
    pub key_file: Option<PathBuf>,
}

/// Options of `serve` only.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RESTIC_MANAGER_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain; with --tls-key, serve HTTPS/WSS.
    #[arg(
        long,
        env = "RESTIC_MANAGER_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "RESTIC_MANAGER_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Largest WebSocket frame accepted from an agent, in bytes.
    #[arg(long, env = "RESTIC_MANAGER_MAX_FRAME_BYTES", value_name = "BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Seconds after a cron time without a fire before the run is recorded as missed.
    #[arg(
        long,
        env = "RESTIC_MANAGER_MISSED_RUN_GRACE_SECONDS",
        value_name = "SECONDS"
    )]
    pub missed_run_grace_seconds: Option<u64>,
    /// Database connections in the pool (default 8).
    #[arg(long, env = "RESTIC_MANAGER_POOL_SIZE", value_name = "N")]
    pub pool_size: Option<u32>,
    /// Seconds a request waits for a database connection (or for the database to come back) before it fails (default 30).
    #[arg(
        long,
        env = "RESTIC_MANAGER_POOL_CONNECTION_TIMEOUT_SECONDS",
        value_name = "SECONDS"
    )]
    pub pool_connection_timeout_seconds: Option<u64>,
    /// Seconds after which an idle database connection is closed (default 600; 0: never).
    #[arg(
        long,
        env = "RESTIC_MANAGER_POOL_IDLE_TIMEOUT_SECONDS",
        value_name = "SECONDS"
    )]
    pub pool_idle_timeout_seconds: Option<u64>,
    /// PostgreSQL: seconds after which the database cancels a statement (default 0: no limit).
    #[arg(
        long,
        env = "RESTIC_MANAGER_STATEMENT_TIMEOUT_SECONDS",
        value_name = "SECONDS"
    )]
    pub statement_timeout_seconds: Option<u64>,
    /// PostgreSQL: the application_name of the server's connections (default restic-manager).
    #[arg(
        long,
        env = "RESTIC_MANAGER_DATABASE_APPLICATION_NAME",
        value_name = "NAME"
    )]
    pub database_application_name: Option<String>,
    /// PostgreSQL: plan_cache_mode of the server's connections: force_generic_plan (default), auto or force_custom_plan.
    #[arg(
        long,
        env = "RESTIC_MANAGER_DATABASE_PLAN_CACHE_MODE",
        value_name = "MODE"
    )]
    pub database_plan_cache_mode: Option<String>,
    /// Days to keep the log lines of finished jobs (0: keep forever; default 90).
    #[arg(long, env = "RESTIC_MANAGER_LOG_RETENTION_DAYS", value_name = "DAYS")]
    pub log_retention_days: Option<u32>,
    /// Newest snapshots kept in the catalog per host and source group (default 3).
    #[arg(long, env = "RESTIC_MANAGER_CATALOG_KEEP", value_name = "N")]
    pub catalog_keep: Option<usize>,
    /// Largest snapshot download relayed, in bytes; a longer one is cut (default 10 GiB).
    #[arg(long, env = "RESTIC_MANAGER_MAX_DOWNLOAD_BYTES", value_name = "BYTES")]
    pub max_download_bytes: Option<u64>,
    /// SMTP server for mail notifications: smtp://user:pass@host:587 (STARTTLS; `?tls=none` for a local relay), smtps://… for TLS from the start.
    #[arg(long, env = "RESTIC_MANAGER_SMTP_URL", value_name = "URL")]
    pub smtp_url: Option<String>,
    /// Sender address of notification mails (default restic-manager@localhost).
    #[arg(long, env = "RESTIC_MANAGER_SMTP_FROM", value_name = "ADDRESS")]
    pub smtp_from: Option<String>,
    /// Seconds a host may stay offline before `host.offline` is notified (default 600).
    #[arg(
        long,
        env = "RESTIC_MANAGER_OFFLINE_GRACE_SECONDS",
        value_name = "SECONDS"
    )]
    pub offline_grace_seconds: Option<u64>,
    /// More events than this for one channel within a minute go out as one summary (default 20).
    #[arg(long, env = "RESTIC_MANAGER_NOTIFY_BURST", value_name = "N")]
    pub notify_burst: Option<usize>,
    /// The server's address as operators reach it (https://backup.example.com), for links in notifications.
    #[arg(long, env = "RESTIC_MANAGER_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Seconds a browser session lives without activity (default 12 hours).
    #[arg(
        long,
        env = "RESTIC_MANAGER_SESSION_IDLE_SECONDS",
        value_name = "SECONDS"
    )]
    pub session_idle_seconds: Option<u64>,
    /// Seconds a browser session lives at most, however active (default 7 days).
    #[arg(
        long,
        env = "RESTIC_MANAGER_SESSION_LIFETIME_SECONDS",
        value_name = "SECONDS"
    )]
    pub session_lifetime_seconds: Option<u64>,
    /// The newest agent release (semantic version); older agents are told of it (default: this server's version).
    #[arg(
        long,
        env = "RESTIC_MANAGER_AGENT_LATEST_VERSION",
        value_name = "VERSION"
    )]
    pub agent_latest_version: Option<String>,
    /// Where operators get the newest agent package (sent with the update notice).
    #[arg(long, env = "RESTIC_MANAGER_AGENT_PACKAGE_URL", value_name = "URL")]
    pub agent_package_url: Option<String>,
    /// What changed in the newest agent release (sent with the update notice).
    #[arg(long, env = "RESTIC_MANAGER_AGENT_CHANGELOG_URL", value_name = "URL")]
    pub agent_changelog_url: Option<String>,
}

/// The TOML file: every key optional, same names as the flags (snake case).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub key_file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_frame_bytes: Option<usize>,
    pub missed_run_grace_seconds: Option<u64>,
    pub pool_size: Option<u32>,
    pub pool_connection_timeout_seconds: Option<u64>,
    pub pool_idle_timeout_seconds: Option<u64>,
    pub statement_timeout_seconds: Option<u64>,
    pub database_application_name: Option<String>,
    pub database_plan_cache_mode: Option<String>,
    pub log_retention_days: Option<u32>,
    pub catalog_keep: Option<usize>,
    pub max_download_bytes: Option<u64>,
    pub smtp_url: Option<String>,
    pub smtp_from: Option<String>,
    pub offline_grace_seconds: Option<u64>,
    pub notify_burst: Option<usize>,
    pub public_url: Option<String>,
    pub session_idle_seconds: Option<u64>,
    pub session_lifetime_seconds: Option<u64>,
    pub agent_latest_version: Option<String>,
    pub agent_package_url: Option<String>,
    pub agent_changelog_url: Option<String>,
}

/// Errors while assembling the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {name}: {message}")]
    Invalid { name: &'static str, message: String },
}

/// TLS certificate and key paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A database URL that may carry a password: `Debug`/`Display` hide it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl DatabaseUrl {
    /// The URL with any password replaced by `***`, safe to log.
    pub fn redacted(&self) -> String {
        crate::redact::url(&self.0)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A URL that may carry a password (the SMTP server's): `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL (from a flag, the file or a test).
    pub fn new(url: String) -> Self {
        SecretUrl(url)
    }

    /// The URL itself, for the code that connects with it (never log it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", crate::redact::url(&self.0))
    }
}

/// Notification settings (issue 15 A; `notify`, `actors::notifier`).
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `--smtp-url`.
    pub smtp_url: Option<SecretUrl>,
    /// `--smtp-from`.
    pub smtp_from: Option<String>,
    /// `--offline-grace-seconds`.
    pub offline_grace: std::time::Duration,
    /// `--notify-burst`.
    pub burst: usize,
    /// `--public-url`, without a trailing slash.
    pub public_url: Option<String>,
    /// The window of the burst rule (a minute). Not a flag: tests shorten it.
    pub burst_window: std::time::Duration,
    /// How often the notifier looks for work. Not a flag.
    pub tick: std::time::Duration,
    /// The first retry's delay; each next one doubles, up to an hour. Not
    /// a flag: tests shorten it.
    pub retry_base: std::time::Duration,
    /// How long an event is retried before it is given up. Not a flag.
    pub give_up_after: std::time::Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            smtp_url: None,
            smtp_from: None,
            offline_grace: std::time::Duration::from_secs(600),
            burst: 20,
            public_url: None,
            burst_window: std::time::Duration::from_secs(60),
            tick: std::time::Duration::from_secs(1),
            retry_base: std::time::Duration::from_secs(10),
            give_up_after: std::time::Duration::from_secs(24 * 3600),
        }
    }
}

impl NotifyConfig {
    fn resolve(serve: &ServeArgs, file: &FileConfig) -> Result<Self, ConfigError> {
        let defaults = NotifyConfig::default();
        let smtp_url = serve.smtp_url.clone().or(file.smtp_url.clone());
        if let Some(url) = &smtp_url {
            let scheme_ok = url.starts_with("smtp://") || url.starts_with("smtps://");
            if !scheme_ok {
                return Err(ConfigError::Invalid {
                    name: "smtp_url",
                    message: format!(
                        "{} is not an smtp:// or smtps:// URL",
                        crate::redact::url(url)
                    ),
                });
            }
        }
        let public_url = serve.public_url.clone().or(file.public_url.clone());
        if let Some(url) = &public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    name: "public_url",
                    message: format!("{url} is not an http:// or https:// URL"),
                });
            }
        }
        let burst = serve
            .notify_burst
            .or(file.notify_burst)
            .unwrap_or(defaults.burst);
        if burst == 0 {
            return Err(ConfigError::Invalid {
                name: "notify_burst",
                message: "must be at least 1".into(),
            });
        }
        Ok(NotifyConfig {
            smtp_url: smtp_url.map(SecretUrl::new),
            smtp_from: serve.smtp_from.clone().or(file.smtp_from.clone()),
            offline_grace: serve
                .offline_grace_seconds
                .or(file.offline_grace_seconds)
                .map(std::time::Duration::from_secs)
                .unwrap_or(defaults.offline_grace),
            burst,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            ..defaults
        })
    }
}

/// Everything the server and the admin commands need, defaults applied.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    pub key_file: PathBuf,
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub max_frame_bytes: usize,
    pub missed_run_grace_seconds: u64,
    /// The database pool: size, timeouts, PostgreSQL session settings.
    pub pool: crate::store::PoolSettings,
    /// Days the log lines of a finished job are kept; 0 keeps them forever.
    pub log_retention_days: u32,
    /// Bytes a snapshot download may stream; past it the stream is cut.
    pub max_download_bytes: u64,
    /// How long a browser session lives without activity.
    pub session_idle: std::time::Duration,
    /// How long a browser session lives at most, however active.
    pub session_lifetime: std::time::Duration,
    /// How long a new agent session may stay silent before its `hello`
    /// (PROTOCOL.md: 10 s). Not a flag: the protocol fixes it; tests of the
    /// deadline shorten it so they need not wait the full 10 s.
    pub hello_timeout: std::time::Duration,
    /// Newest snapshots kept in the catalog per host and source group.
    pub catalog_keep: usize,
    /// How long a browse of a snapshot that is not catalogued waits for
    /// the agent's live listing (API.md: 60 s, then 504). Not a flag;
    /// tests of the deadline shorten it.
    pub live_list_timeout: std::time::Duration,
    /// Notifications: SMTP, offline grace, burst, links.
    pub notify: NotifyConfig,
    /// The shortest `interval_seconds` of a health check the API accepts
    /// (API.md: 10). Not a flag; tests lower it so a check goes down and
    /// up within seconds.
    pub health_min_interval_seconds: u32,
    /// The newest agent release: older agents get `agent.update_available`.
    pub agent_release: AgentRelease,
}

/// The newest agent release from `--agent-latest-version` (semver; default
/// this server's version), `--agent-package-url` and
/// `--agent-changelog-url` (http or https).
fn resolve_agent_release(
    serve: &ServeArgs,
    file: &FileConfig,
) -> Result<AgentRelease, ConfigError> {
    let mut release = AgentRelease::default();
    let pick = |flag: &Option<String>, key: &Option<String>| {
        flag.clone()
            .or_else(|| key.clone())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if let Some(text) = pick(&serve.agent_latest_version, &file.agent_latest_version) {
        release.latest =
            crate::agent_release::parse_version(&text).map_err(|e| ConfigError::Invalid {
                name: "agent_latest_version",
                message: format!("{text:?} is not a semantic version (like 1.4.0): {e}"),
            })?;
    }
    let url = |name: &'static str, value: Option<String>| match value {
        Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
            Err(ConfigError::Invalid {
                name,
                message: format!("{url:?} is not an http:// or https:// URL"),
            })
        }
        other => Ok(other),
    };
    if let Some(package) = url(
        "agent_package_url",
        pick(&serve.agent_package_url, &file.agent_package_url),
    )? {
        release.package_url = package;
    }
    release.changelog_url = url(
        "agent_changelog_url",
        pick(&serve.agent_changelog_url, &file.agent_changelog_url),
    )?;
    Ok(release)
}

impl ServerConfig {
    /// Merges flags/env (already in `common`/`serve`) with the TOML file and defaults.
    pub fn resolve(common: &CommonArgs, serve: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &common.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        Self::resolve_with_file(common, serve, file)
    }

    /// [`resolve`](Self::resolve) with the file already read.
    pub fn resolve_with_file(
        common: &CommonArgs,
        serve: &ServeArgs,
        file: FileConfig,
    ) -> Result<Self, ConfigError> {
        let notify = NotifyConfig::resolve(serve, &file)?;
        let pool = pool::resolve(serve, &file)?;
        let agent_release = resolve_agent_release(serve, &file)?;
        let data_dir = common
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = common
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| default_sqlite_url(&data_dir));
        if database_url.trim().is_empty() {
            return Err(ConfigError::Invalid {
                name: "database_url",
                message: "must not be empty".into(),
            });
        }
        let key_file = common
            .key_file
            .clone()
            .or(file.key_file)
            .unwrap_or_else(|| data_dir.join(DEFAULT_KEY_FILE));
        let listen = match serve.listen.or(file.listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse().map_err(|e| ConfigError::Invalid {
                name: "listen",
                message: format!("{e}"),
            })?,
        };
        let tls = match (
            serve.tls_cert.clone().or(file.tls_cert),
            serve.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "tls_cert/tls_key",
                    message: "both a certificate and a key are needed for TLS".into(),
                })
            }
        };
        let max_frame_bytes = serve
            .max_frame_bytes
            .or(file.max_frame_bytes)
            .unwrap_or(DEFAULT_MAX_FRAME_BYTES);
        if max_frame_bytes < 1024 {
            return Err(ConfigError::Invalid {
                name: "max_frame_bytes",
                message: format!("{max_frame_bytes} is too small (at least 1024)"),
            });
        }
        let catalog_keep = serve
            .catalog_keep
            .or(file.catalog_keep)
            .unwrap_or(crate::store::catalog::DEFAULT_KEEP);
        if catalog_keep == 0 {
            return Err(ConfigError::Invalid {
                name: "catalog_keep",
                message: "must be at least 1".into(),
            });
        }
        let session_seconds = |name: &'static str, value: Option<u64>, default: u64| {
            let seconds = value.unwrap_or(default);
            if seconds < MIN_SESSION_SECONDS {
                return Err(ConfigError::Invalid {
                    name,
                    message: format!("{seconds} is too short (at least {MIN_SESSION_SECONDS})"),
                });
            }
            Ok(std::time::Duration::from_secs(seconds))
        };
        let session_idle = session_seconds(
            "session_idle_seconds",
            serve.session_idle_seconds.or(file.session_idle_seconds),
            DEFAULT_SESSION_IDLE_SECONDS,
        )?;
        let session_lifetime = session_seconds(
            "session_lifetime_seconds",
            serve
                .session_lifetime_seconds
                .or(file.session_lifetime_seconds),
            DEFAULT_SESSION_LIFETIME_SECONDS,
        )?;
        Ok(ServerConfig {
            data_dir,
            database_url: DatabaseUrl(database_url),
            key_file,
            listen,
            tls,
            max_frame_bytes,
            missed_run_grace_seconds: serve
                .missed_run_grace_seconds
                .or(file.missed_run_grace_seconds)
                .unwrap_or(DEFAULT_MISSED_RUN_GRACE_SECONDS),
            pool,
            log_retention_days: serve
                .log_retention_days
                .or(file.log_retention_days)
                .unwrap_or(DEFAULT_LOG_RETENTION_DAYS),
            max_download_bytes: serve
                .max_download_bytes
                .or(file.max_download_bytes)
                .unwrap_or(DEFAULT_MAX_DOWNLOAD_BYTES),
            session_idle,
            session_lifetime,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            catalog_keep,
            live_list_timeout: DEFAULT_LIVE_LIST_TIMEOUT,
            notify,
            health_min_interval_seconds: crate::protocol::MIN_INTERVAL_SECONDS,
            agent_release,
        })
    }

    /// A configuration for tests: everything under `data_dir`, port 0.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        ServerConfig {
            data_dir: data_dir.to_path_buf(),
            database_url: DatabaseUrl(default_sqlite_url(data_dir)),
            key_file: data_dir.join(DEFAULT_KEY_FILE),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            missed_run_grace_seconds: DEFAULT_MISSED_RUN_GRACE_SECONDS,
            pool: crate::store::PoolSettings::with_size(DEFAULT_POOL_SIZE),
            log_retention_days: DEFAULT_LOG_RETENTION_DAYS,
            max_download_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
            session_idle: std::time::Duration::from_secs(DEFAULT_SESSION_IDLE_SECONDS),
            session_lifetime: std::time::Duration::from_secs(DEFAULT_SESSION_LIFETIME_SECONDS),
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            catalog_keep: crate::store::catalog::DEFAULT_KEEP,
            live_list_timeout: DEFAULT_LIVE_LIST_TIMEOUT,
            notify: NotifyConfig::default(),
            health_min_interval_seconds: crate::protocol::MIN_INTERVAL_SECONDS,
            agent_release: AgentRelease::default(),
        }
    }
}

fn default_sqlite_url(data_dir: &Path) -> String {
    data_dir
        .join(DEFAULT_DB_FILE)
        .to_string_lossy()
        .into_owned()
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(&text, path)
}

/// Parses the TOML text of a config file; `path` names it in errors.
pub fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defaults: ./data, SQLite file inside it, 127.0.0.1:8080, no TLS.
    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let cfg = ServerConfig::resolve(&CommonArgs::default(), &ServeArgs::default()).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("./data"));
        assert_eq!(cfg.database_url.0, "./data/restic-manager.db");
        assert_eq!(cfg.key_file, PathBuf::from("./data/secret.key"));
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert!(cfg.tls.is_none());
        assert_eq!(cfg.max_frame_bytes, 8 * 1024 * 1024);
        assert_eq!(cfg.log_retention_days, 90);
    }

    /// The TOML file fills unset values; flags (and env, via clap) win over it.
    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rm.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/rm\"\nlisten = \"0.0.0.0:9000\"\npool_size = 3\nlog_retention_days = 7\n",
        )
        .unwrap();
        let common = CommonArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let serve = ServeArgs {
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            ..Default::default()
        };
        let cfg = ServerConfig::resolve(&common, &serve).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/srv/rm"));
        assert_eq!(cfg.database_url.0, "/srv/rm/restic-manager.db");
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(cfg.pool.max_size, 3);
        assert_eq!(cfg.log_retention_days, 7);
        let zero = ServeArgs {
            log_retention_days: Some(0),
            ..Default::default()
        };
        assert_eq!(
            ServerConfig::resolve(&common, &zero)
                .unwrap()
                .log_retention_days,
            0,
            "the flag wins over the file"
        );
    }

    /// `--catalog-keep` defaults to 3; 0 is refused naming the setting.
    #[test]
    fn catalog_keep() {
        let common = CommonArgs::default();
        let cfg = ServerConfig::resolve(&common, &ServeArgs::default()).unwrap();
        assert_eq!(cfg.catalog_keep, 3);
        assert_eq!(cfg.live_list_timeout, std::time::Duration::from_secs(60));
        let five = ServeArgs {
            catalog_keep: Some(5),
            ..Default::default()
        };
        assert_eq!(
            ServerConfig::resolve(&common, &five).unwrap().catalog_keep,
            5
        );
        let zero = ServeArgs {
            catalog_keep: Some(0),
            ..Default::default()
        };
        let err = ServerConfig::resolve(&common, &zero)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("catalog_keep") && err.contains("at least 1"),
            "{err}"
        );
    }

    /// Sessions: 12 hours idle and 7 days at most by default; both can be
    /// set, from the file too; under a minute is refused naming the setting.
    #[test]
    fn session_lifetimes() {
        use std::time::Duration;
        let cfg = ServerConfig::resolve(&CommonArgs::default(), &ServeArgs::default()).unwrap();
        assert_eq!(cfg.session_idle, Duration::from_secs(12 * 3600));
        assert_eq!(cfg.session_lifetime, Duration::from_secs(7 * 24 * 3600));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rm.toml");
        std::fs::write(&path, "session_lifetime_seconds = 86400\n").unwrap();
        let common = CommonArgs {
            config: Some(path),
            ..Default::default()
        };
        let serve = ServeArgs {
            session_idle_seconds: Some(600),
            ..Default::default()
        };
        let cfg = ServerConfig::resolve(&common, &serve).unwrap();
        assert_eq!(cfg.session_idle, Duration::from_secs(600));
        assert_eq!(cfg.session_lifetime, Duration::from_secs(86400));
        let short = ServeArgs {
            session_lifetime_seconds: Some(5),
            ..Default::default()
        };
        let err = ServerConfig::resolve(&common, &short)
            .unwrap_err()
            .to_string();
        assert!(err.contains("session_lifetime_seconds"), "{err}");
    }

    /// The newest agent release defaults to this server's version; the
    /// flags (or the file) set it and its URLs; bad values are refused
    /// naming the setting.
    #[test]
    fn agent_release() {
        let common = CommonArgs::default();
        let cfg = ServerConfig::resolve(&common, &ServeArgs::default()).unwrap();
        assert_eq!(
            cfg.agent_release.latest.to_string(),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(cfg.agent_release.package_url, "");
        assert_eq!(cfg.agent_release.changelog_url, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rm.toml");
        std::fs::write(&path, "agent_package_url = \"https://apt.example/\"\n").unwrap();
        let with_file = CommonArgs {
            config: Some(path),
            ..Default::default()
        };
        let serve = ServeArgs {
            agent_latest_version: Some("2.1.0-rc.1".to_owned()),
            agent_changelog_url: Some("https://example/changes".to_owned()),
            ..Default::default()
        };
        let cfg = ServerConfig::resolve(&with_file, &serve).unwrap();
        assert_eq!(cfg.agent_release.latest.to_string(), "2.1.0-rc.1");
        assert_eq!(cfg.agent_release.package_url, "https://apt.example/");
        assert_eq!(
            cfg.agent_release.changelog_url.as_deref(),
            Some("https://example/changes")
        );
        for (serve, name) in [
            (
                ServeArgs {
                    agent_latest_version: Some("latest".to_owned()),
                    ..Default::default()
                },
                "agent_latest_version",
            ),
            (
                ServeArgs {
                    agent_package_url: Some("apt.example".to_owned()),
                    ..Default::default()
                },
                "agent_package_url",
            ),
            (
                ServeArgs {
                    agent_changelog_url: Some("ftp://x/".to_owned()),
                    ..Default::default()
                },
                "agent_changelog_url",
            ),
        ] {
            let err = ServerConfig::resolve(&common, &serve)
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    /// A typo in the config file is an error naming the file, not ignored.
    #[test]
    fn unknown_key_in_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rm.toml");
        std::fs::write(&path, "lisen = \"0.0.0.0:9000\"\n").unwrap();
        let common = CommonArgs {
            config: Some(path),
            ..Default::default()
        };
        let err = ServerConfig::resolve(&common, &ServeArgs::default()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("rm.toml") && text.contains("lisen"), "{text}");
    }

    /// A missing config file is a clear error.
    #[test]
    fn missing_file_is_an_error() {
        let common = CommonArgs {
            config: Some(PathBuf::from("/nonexistent/rm.toml")),
            ..Default::default()
        };
        let err = ServerConfig::resolve(&common, &ServeArgs::default()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/rm.toml"));
    }

    /// Passwords in database URLs never reach logs.
    #[test]
    fn database_url_password_is_redacted() {
        let url = DatabaseUrl("postgres://rm:s3cret@db:5432/rm".into());
        assert_eq!(url.redacted(), "postgres://rm:***@db:5432/rm");
        assert!(!format!("{url:?} {url}").contains("s3cret"));
        assert_eq!(
            crate::redact::url("postgres://rm@db/rm"),
            "postgres://rm@db/rm"
        );
        assert_eq!(crate::redact::url("./data/x.db"), "./data/x.db");
    }
}
