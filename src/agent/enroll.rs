//! `restic-manager-agent enroll`: trades a one-time enrolment token for the
//! host's id and agent token (`POST /api/v1/agent/enroll`) and writes them
//! to `agent.toml` (mode 0600).
//!
//! An already enrolled config is never overwritten without `force`, so a
//! stray re-run cannot orphan a host on the server. Plain `http://` is
//! accepted for loopback servers only, unless explicitly allowed: the
//! enrolment token and the agent token cross this request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{StatusCode, Url};

use super::config::{AgentConfig, ConfigError, Secret};
use super::connection::{self, ConnectError};
use super::platform;
use super::tls::{self, TlsError};
use crate::protocol::{EnrollRequest, EnrollResponse};

/// The enrolment route under the server's base URL.
pub const ENROLL_PATH: &str = "/api/v1/agent/enroll";

/// Longest the enrolment request may take.
pub const ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

/// What `enroll` needs.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The server's base URL (`https://backup.example.com`).
    pub server_url: String,
    /// The one-time enrolment token.
    pub token: Secret,
    /// Where to write `agent.toml`.
    pub config_path: PathBuf,
    /// Extra CA certificates to trust (also saved in the config).
    pub ca_file: Option<PathBuf>,
    /// Overwrite an existing enrolled config.
    pub force: bool,
    /// Allow plain `http://` to a non-loopback server (also saved as
    /// `allow_insecure_ws`).
    pub allow_insecure: bool,
}

/// Why enrolment failed. Each text is one line fit for the terminal.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The config file already holds an enrolment.
    #[error("{0} already holds an enrolled agent (use --force to replace it)")]
    AlreadyEnrolled(PathBuf),
    /// The server refused the token.
    #[error("the server refused the enrolment token (unknown, already used or expired): create a new one with `restic-manager token create`")]
    Unauthorized,
    /// The server URL is unusable or insecure.
    #[error(transparent)]
    Url(#[from] ConnectError),
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The request failed (network, TLS, time-out).
    #[error("enrolment request to {url} failed: {message}")]
    Request {
        /// The enrolment URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with an unexpected status.
    #[error("the server answered the enrolment with HTTP {status}: {body}")]
    Status {
        /// The status.
        status: StatusCode,
        /// The start of its body.
        body: String,
    },
    /// The server's answer is not an enrolment response.
    #[error("the server's enrolment answer is not valid: {0}")]
    BadResponse(String),
    /// The config could not be read or written.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Enrols this host and writes the config; returns it.
pub async fn enroll(options: &EnrollOptions) -> Result<AgentConfig, EnrollError> {
    refuse_overwrite(&options.config_path, options.force)?;
    let url = enroll_url(&options.server_url, options.allow_insecure)?;
    let tls = tls::client_config(options.ca_file.as_deref())?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .timeout(ENROLL_TIMEOUT)
        .build()
        .map_err(|err| request_error(&url, &err))?;
    let request = EnrollRequest {
        token: options.token.expose().to_owned(),
        hostname: platform::hostname(),
        os: platform::os_name().to_owned(),
        arch: platform::arch_name().to_owned(),
    };
    let response = client
        .post(url.clone())
        .json(&request)
        .send()
        .await
        .map_err(|err| request_error(&url, &err))?;
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED {
        return Err(EnrollError::Unauthorized);
    }
    let body = response
        .text()
        .await
        .map_err(|err| request_error(&url, &err))?;
    if !status.is_success() {
        return Err(EnrollError::Status {
            status,
            body: body.chars().take(300).collect(),
        });
    }
    let answer: EnrollResponse =
        serde_json::from_str(&body).map_err(|err| EnrollError::BadResponse(err.to_string()))?;
    if answer.host_id.is_empty() || answer.agent_token.is_empty() {
        return Err(EnrollError::BadResponse(
            "empty host_id or agent_token".to_owned(),
        ));
    }
    let mut config = AgentConfig::new(
        options.server_url.trim(),
        answer.host_id,
        Secret::new(answer.agent_token),
    );
    config.ca_file = options.ca_file.clone();
    config.allow_insecure_ws = options.allow_insecure;
    config.save(&options.config_path)?;
    tracing::info!(host_id = %config.host_id, path = %options.config_path.display(), "enrolled");
    Ok(config)
}

/// Refuses to replace a config that holds an enrolment unless forced. A
/// file that exists but does not parse is also kept unless forced: it may
/// be a config with a typo, not garbage.
fn refuse_overwrite(path: &Path, force: bool) -> Result<(), EnrollError> {
    if force || !path.exists() {
        return Ok(());
    }
    Err(EnrollError::AlreadyEnrolled(path.to_owned()))
}

/// `<server>/api/v1/agent/enroll`, checked against the plain-text rule.
fn enroll_url(server_url: &str, allow_insecure: bool) -> Result<Url, EnrollError> {
    let mut url = Url::parse(server_url.trim()).map_err(|err| ConnectError::BadUrl {
        url: server_url.to_owned(),
        reason: err.to_string(),
    })?;
    connection::check_http_url(&url, allow_insecure)?;
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}{ENROLL_PATH}"));
    url.set_query(None);
    Ok(url)
}

fn request_error(url: &Url, err: &reqwest::Error) -> EnrollError {
    // reqwest's Display names the URL and the cause; neither holds a secret
    // (the token is in the body).
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    EnrollError::Request {
        url: url.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The enrol URL keeps a path prefix and refuses http off loopback.
    #[test]
    fn enroll_urls() {
        assert_eq!(
            enroll_url("https://b.example/rm/", false).unwrap().as_str(),
            "https://b.example/rm/api/v1/agent/enroll"
        );
        assert_eq!(
            enroll_url("http://127.0.0.1:8080", false).unwrap().as_str(),
            "http://127.0.0.1:8080/api/v1/agent/enroll"
        );
        assert!(matches!(
            enroll_url("http://10.2.3.4:8080", false),
            Err(EnrollError::Url(ConnectError::InsecureRefused { .. }))
        ));
        assert!(enroll_url("http://10.2.3.4:8080", true).is_ok());
        assert!(enroll_url("ftp://x", true).is_err());
    }

    /// An existing config is kept unless forced.
    #[test]
    fn existing_config_is_protected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        refuse_overwrite(&path, false).unwrap();
        AgentConfig::new("https://s", "h1", Secret::new("t"))
            .save(&path)
            .unwrap();
        assert!(matches!(
            refuse_overwrite(&path, false),
            Err(EnrollError::AlreadyEnrolled(_))
        ));
        refuse_overwrite(&path, true).unwrap();
    }
}
