//! Sending one notification: a webhook `POST` signed with the channel's
//! secret, or a mail through the SMTP server of `--smtp-url`.
//!
//! The body of a webhook is the event's JSON (docs/API.md,
//! "Notifications"); `X-Restic-Manager-Signature: sha256=<hex>` is the
//! HMAC-SHA256 of the exact body bytes under the channel's secret, and
//! `X-Restic-Manager-Delivery` the delivery's id, which a receiver can use
//! to drop a repeat (delivery is at least once: a crash after the
//! receiver's 2xx and before the server recorded it sends again).
//!
//! Nothing here logs a secret: the SMTP URL's password and the webhook
//! secret never reach a log line or an error text.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::config::NotifyConfig;

/// How long one delivery may take before it counts as failed.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Events listed in full in a summary; the rest are counted.
pub const SUMMARY_LIST_MAX: usize = 1000;

/// The signature header of a webhook body.
pub const SIGNATURE_HEADER: &str = "X-Restic-Manager-Signature";
/// The delivery id header.
pub const DELIVERY_HEADER: &str = "X-Restic-Manager-Delivery";

/// Where a notification goes, with the secret opened.
pub enum Target {
    Webhook { url: String, secret: Option<String> },
    Email { to: Vec<String> },
}

/// Why a delivery failed: the receiver's status (if it answered) and a
/// text safe to store and show.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status_code: Option<i32>,
    pub error: String,
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts a key of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The body of one event as sent: the stored payload plus the delivery's
/// `id` and the page's `url` (absolute with `--public-url`).
pub fn event_body(payload: &str, id: &str, public_url: Option<&str>) -> Value {
    let mut body: Value = serde_json::from_str(payload).unwrap_or_else(|_| json!({}));
    if let Some(obj) = body.as_object_mut() {
        obj.insert("id".into(), Value::String(id.to_owned()));
        if let Some(path) = obj
            .remove("path")
            .and_then(|p| p.as_str().map(str::to_owned))
        {
            let url = match public_url {
                Some(base) => format!("{}{path}", base.trim_end_matches('/')),
                None => path,
            };
            obj.insert("url".into(), Value::String(url));
        }
    }
    body
}

/// One message for many events: `event: "summary"`, the count per event
/// name and the events themselves (the first [`SUMMARY_LIST_MAX`]).
pub fn summary_body(id: &str, events: &[Value]) -> Value {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for e in events {
        let name = e.get("event").and_then(Value::as_str).unwrap_or("?");
        *counts.entry(name.to_owned()).or_default() += 1;
    }
    let text = counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    json!({
        "id": id,
        "event": "summary",
        "count": events.len(),
        "counts": counts,
        "message": format!("{} events: {text}", events.len()),
        "events": events.iter().take(SUMMARY_LIST_MAX).map(compact).collect::<Vec<_>>(),
    })
}

/// An event as a summary lists it: what, where, when and the link (a
/// thousand of them stay near 250 KB).
fn compact(event: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in [
        "id",
        "event",
        "state",
        "occurred_at",
        "source_group",
        "message",
        "url",
    ] {
        if let Some(v) = event.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    if let Some(host) = event.get("host") {
        out.insert(
            "host".to_owned(),
            json!({"id": host.get("id"), "name": host.get("name")}),
        );
    }
    Value::Object(out)
}

/// A mail's subject and text for a body (one event or a summary).
pub fn mail_text(body: &Value) -> (String, String) {
    let subject = if body.get("event").and_then(Value::as_str) == Some("summary") {
        format!(
            "[restic-manager] {}",
            body.get("message")
                .and_then(Value::as_str)
                .unwrap_or("summary")
        )
    } else {
        format!("[restic-manager] {}", super::one_line(body))
    };
    let mut text = String::new();
    match body.get("events").and_then(Value::as_array) {
        Some(events) => {
            for e in events {
                text.push_str(&super::one_line(e));
                text.push('\n');
            }
        }
        None => {
            text.push_str(&super::one_line(body));
            text.push('\n');
            if let Some(url) = body.get("url").and_then(Value::as_str) {
                text.push_str(url);
                text.push('\n');
            }
        }
    }
    text.push_str("\n-- \nrestic-manager\n");
    (subject, text)
}

/// Sends `body` to `target`; `Ok(status)` when the receiver took it.
pub async fn send(
    http: &reqwest::Client,
    config: &NotifyConfig,
    target: &Target,
    id: &str,
    body: &Value,
) -> Result<Option<i32>, Failure> {
    match target {
        Target::Webhook { url, secret } => webhook(http, url, secret.as_deref(), id, body).await,
        Target::Email { to } => email(config, to, body).await.map(|()| None),
    }
}

async fn webhook(
    http: &reqwest::Client,
    url: &str,
    secret: Option<&str>,
    id: &str,
    body: &Value,
) -> Result<Option<i32>, Failure> {
    let bytes = body.to_string().into_bytes();
    let mut request = http
        .post(url)
        .timeout(TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, id);
    if let Some(secret) = secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, &bytes));
    }
    let response = request.body(bytes).send().await.map_err(|e| Failure {
        status_code: None,
        // reqwest's text names the URL; ours carry no credentials (the
        // API refuses `user:pass@` in webhook URLs).
        error: format!("cannot reach the webhook: {}", e.without_url()),
    })?;
    let status = i32::from(response.status().as_u16());
    if response.status().is_success() {
        Ok(Some(status))
    } else {
        Err(Failure {
            status_code: Some(status),
            error: format!("the webhook answered {}", response.status()),
        })
    }
}

/// The mail transport for `--smtp-url`: `smtp://` is STARTTLS (required),
/// `smtp://…?tls=none` plain (a relay on the same host),
/// `smtp://…?tls=opportunistic` STARTTLS when offered, `smtps://` TLS from
/// the start. lettre reads the rest (host, port, user and password).
fn transport(url: &str) -> Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, String> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let tls = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let others: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "tls")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let tls = match (parsed.scheme(), tls.as_deref()) {
        ("smtp", None) => Some("required".to_owned()),
        ("smtp", Some("none")) => None,
        (_, tls) => tls.map(str::to_owned),
    };
    parsed.set_query(None);
    if !others.is_empty() || tls.is_some() {
        let mut query = parsed.query_pairs_mut();
        query.extend_pairs(others);
        if let Some(tls) = tls {
            query.append_pair("tls", &tls);
        }
    }
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(parsed.as_str())
        .map(|b| b.timeout(Some(TIMEOUT)).build())
        .map_err(|e| smtp_error(&e))
}

async fn email(config: &NotifyConfig, to: &[String], body: &Value) -> Result<(), Failure> {
    use lettre::AsyncTransport;
    let fail = |error: String| Failure {
        status_code: None,
        error,
    };
    let Some(url) = config.smtp_url.as_ref() else {
        return Err(fail("no SMTP server is configured (--smtp-url)".to_owned()));
    };
    let from = config
        .smtp_from
        .as_deref()
        .unwrap_or("restic-manager@localhost");
    let (subject, text) = mail_text(body);
    let mut builder = lettre::Message::builder()
        .from(
            from.parse()
                .map_err(|e| fail(format!("--smtp-from: {e}")))?,
        )
        .subject(subject);
    for address in to {
        builder = builder.to(address
            .parse()
            .map_err(|e| fail(format!("to: {address:?}: {e}")))?);
    }
    let message = builder
        .body(text)
        .map_err(|e| fail(format!("cannot build the mail: {e}")))?;
    let transport = transport(url.expose()).map_err(|e| fail(format!("--smtp-url: {e}")))?;
    transport.send(message).await.map(|_| ()).map_err(|e| {
        fail(format!(
            "the mail server refused the mail: {}",
            smtp_error(&e)
        ))
    })
}

/// lettre's error text, which never holds the credentials.
fn smtp_error(e: &lettre::transport::smtp::Error) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2: the signature is HMAC-SHA256 in hex.
    #[test]
    fn signature_is_hmac_sha256() {
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn event_body_adds_id_and_url() {
        let body = event_body(
            r#"{"event":"job.failed","path":"/jobs/j1"}"#,
            "d1",
            Some("https://rm.example/"),
        );
        assert_eq!(body["id"], "d1");
        assert_eq!(body["url"], "https://rm.example/jobs/j1");
        assert!(body.get("path").is_none());
        let relative = event_body(r#"{"path":"/hosts/h1"}"#, "d2", None);
        assert_eq!(relative["url"], "/hosts/h1");
    }

    #[test]
    fn summary_counts_events() {
        let events = vec![
            json!({"event":"host.offline"}),
            json!({"event":"host.offline"}),
            json!({"event":"job.failed"}),
        ];
        let body = summary_body("s1", &events);
        assert_eq!(body["count"], 3);
        assert_eq!(body["counts"]["host.offline"], 2);
        assert_eq!(body["message"], "3 events: 2 host.offline, 1 job.failed");
        let (subject, text) = mail_text(&body);
        assert!(subject.contains("3 events"), "{subject}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("host.offline"))
                .count(),
            2
        );
    }
}
