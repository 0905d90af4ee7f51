//! `restic-manager export|apply --server URL --api-token T`: the same
//! commands against a running server, over `GET /api/v1/config/export`
//! and `POST /api/v1/config/apply`. The file is sent as it is; its secret
//! references are read by the server, in the server's environment. An
//! error answer becomes its message (`line 3: …`).

use anyhow::{bail, Context};
use serde::Deserialize;

use super::Change;

/// The answer of `POST /config/apply`.
#[derive(Debug, Deserialize)]
pub struct ApplyAnswer {
    pub changes: Vec<Change>,
    #[serde(default)]
    pub hosts_affected: usize,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(Deserialize)]
struct ErrorInner {
    message: String,
}

/// `URL/api/v1/PATH`, whether or not the URL ends with a slash.
fn endpoint(server: &str, path: &str) -> String {
    format!("{}/api/v1{path}", server.trim_end_matches('/'))
}

/// The answer's body, or its error message.
async fn body(response: reqwest::Response) -> anyhow::Result<String> {
    let status = response.status();
    let text = response
        .text()
        .await
        .context("cannot read the server's answer")?;
    if status.is_success() {
        return Ok(text);
    }
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(e) => bail!("{} ({status})", e.error.message),
        Err(_) => bail!("the server answered {status}"),
    }
}

/// The server's configuration file.
pub async fn export(server: &str, token: &str) -> anyhow::Result<String> {
    let url = endpoint(server, "/config/export");
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    body(response).await
}

/// Applies `text` on the server (or checks it, `dry_run`).
pub async fn apply(
    server: &str,
    token: &str,
    text: String,
    dry_run: bool,
) -> anyhow::Result<ApplyAnswer> {
    let url = endpoint(server, "/config/apply");
    let response = reqwest::Client::new()
        .post(&url)
        .query(&[("dry_run", if dry_run { "true" } else { "false" })])
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/toml")
        .body(text)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let text = body(response).await?;
    serde_json::from_str(&text).context("the server's answer is not a change list")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API path is appended once, with or without a trailing slash.
    #[test]
    fn endpoint_joins() {
        assert_eq!(
            endpoint("http://h:8080/", "/config/export"),
            "http://h:8080/api/v1/config/export"
        );
        assert_eq!(
            endpoint("https://h", "/config/apply"),
            "https://h/api/v1/config/apply"
        );
    }
}
