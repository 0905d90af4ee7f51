//! Service health checks (issue 14 §1): what the server asks an agent to
//! probe (`health.set`, only to an agent that declared
//! [`CAPABILITY_HEALTH`]) and what the agent reports (`health.report`).
//!
//! The same [`HealthCheckSpec`] is the REST API's body and answer of
//! `GET/PUT /api/v1/hosts/{id}/health-checks`; [`validate_checks`] is the
//! one rule set both the API (400 naming the field) and the agent (a
//! check it cannot run is skipped and logged) apply.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `hello.capabilities` entry of an agent that runs health checks.
pub const CAPABILITY_HEALTH: &str = "health";

/// The shortest `interval_seconds` the API accepts (tests of a server may
/// lower it; the agent accepts any interval of at least 1 s).
pub const MIN_INTERVAL_SECONDS: u32 = 10;
/// The longest `interval_seconds` (one day).
pub const MAX_INTERVAL_SECONDS: u32 = 86_400;
/// The longest `timeout_seconds`.
pub const MAX_TIMEOUT_SECONDS: u32 = 300;
/// Most checks on one host.
pub const MAX_CHECKS: usize = 64;
/// Longest check name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest target.
pub const MAX_TARGET_LEN: usize = 2048;
/// The agent reports every result at least this often, changed or not.
pub const REPORT_EVERY_SECONDS: u64 = 300;

/// How a check probes its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckType {
    /// `GET target`; ok when the status is `expect_status` (default
    /// 200–399, redirects not followed).
    Http,
    /// A TCP connect to `host:port`; ok when it connects.
    Tcp,
}

impl HealthCheckType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthCheckType::Http => "http",
            HealthCheckType::Tcp => "tcp",
        }
    }
}

/// One check as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckSpec {
    /// Unique on the host; names the check in results and metrics.
    pub name: String,
    /// `http` or `tcp`.
    #[serde(rename = "type")]
    pub kind: HealthCheckType,
    /// An `http://` or `https://` URL, or `host:port`.
    pub target: String,
    /// Seconds between two probes (at least [`MIN_INTERVAL_SECONDS`]).
    pub interval_seconds: u32,
    /// Seconds a probe may take before it counts as failed.
    pub timeout_seconds: u32,
    /// `http` only: the one status that is ok (default: any of 200–399).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<u16>,
}

/// `health.set` (server → agent): the host's full list of checks; an
/// empty list stops them all. Sent after `hello` and on every change,
/// only to an agent with [`CAPABILITY_HEALTH`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSet {
    /// Every check of the host (required: absence is not "none").
    pub checks: Vec<HealthCheckSpec>,
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckResult {
    /// The check's name.
    pub name: String,
    /// Whether the target answered as expected in time.
    pub ok: bool,
    /// How long the probe took (absent when it timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// `http`: the status received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Why it is not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the probe started.
    pub checked_at: DateTime<Utc>,
}

impl HealthCheckResult {
    /// Whether `other` says something different (the agent reports a
    /// change at once): up/down, status or error; latency alone is not a
    /// change.
    pub fn differs(&self, other: &HealthCheckResult) -> bool {
        self.ok != other.ok || self.status_code != other.status_code || self.error != other.error
    }
}

/// `health.report` (agent → server): the latest results of some or all
/// checks, sent when one changes and at least every
/// [`REPORT_EVERY_SECONDS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// One result per check reported.
    pub results: Vec<HealthCheckResult>,
}

/// Why a list of checks is refused: the field at fault
/// (`[1].interval_seconds`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidHealthCheck {
    /// The path of the field, as the API names it.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn invalid(index: usize, field: &str, message: impl Into<String>) -> InvalidHealthCheck {
    InvalidHealthCheck {
        field: format!("[{index}].{field}"),
        message: message.into(),
    }
}

/// Checks a host's list: at most [`MAX_CHECKS`], unique names, targets
/// that fit their type, `min_interval ≤ interval_seconds ≤ 1 day`,
/// `1 ≤ timeout_seconds < interval_seconds` (and ≤ 300), `expect_status`
/// 100–599 and only for `http`.
pub fn validate_checks(
    checks: &[HealthCheckSpec],
    min_interval: u32,
) -> Result<(), InvalidHealthCheck> {
    if checks.len() > MAX_CHECKS {
        return Err(InvalidHealthCheck {
            field: "checks".to_owned(),
            message: format!("at most {MAX_CHECKS} checks per host"),
        });
    }
    for (i, check) in checks.iter().enumerate() {
        let name = check.name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LEN || name != check.name {
            return Err(invalid(
                i,
                "name",
                format!("1 to {MAX_NAME_LEN} characters, no leading or trailing space"),
            ));
        }
        if !check.name.chars().all(name_char) {
            return Err(invalid(
                i,
                "name",
                "letters, digits, spaces and - _ . : / @ only",
            ));
        }
        if checks[..i].iter().any(|c| c.name == check.name) {
            return Err(invalid(
                i,
                "name",
                format!("{:?} is used by another check", check.name),
            ));
        }
        check_target(check.kind, &check.target).map_err(|m| invalid(i, "target", m))?;
        if check.interval_seconds < min_interval || check.interval_seconds > MAX_INTERVAL_SECONDS {
            return Err(invalid(
                i,
                "interval_seconds",
                format!("must be between {min_interval} and {MAX_INTERVAL_SECONDS}"),
            ));
        }
        if check.timeout_seconds == 0
            || check.timeout_seconds > MAX_TIMEOUT_SECONDS
            || check.timeout_seconds >= check.interval_seconds.max(2)
        {
            return Err(invalid(
                i,
                "timeout_seconds",
                format!(
                    "must be at least 1, at most {MAX_TIMEOUT_SECONDS} and below interval_seconds"
                ),
            ));
        }
        match (check.kind, check.expect_status) {
            (_, None) => {}
            (HealthCheckType::Tcp, Some(_)) => {
                return Err(invalid(i, "expect_status", "only for http checks"));
            }
            (HealthCheckType::Http, Some(status)) if !(100..=599).contains(&status) => {
                return Err(invalid(
                    i,
                    "expect_status",
                    "must be an HTTP status, 100-599",
                ));
            }
            (HealthCheckType::Http, Some(_)) => {}
        }
    }
    Ok(())
}

/// A character a check name may hold (it is a label value on `/metrics`).
fn name_char(c: char) -> bool {
    c.is_alphanumeric() || " -_.:/@".contains(c)
}

/// A target for `kind`: an `http(s)://host…` URL, or `host:port`.
fn check_target(kind: HealthCheckType, target: &str) -> Result<(), String> {
    if target.is_empty() || target.len() > MAX_TARGET_LEN {
        return Err(format!("1 to {MAX_TARGET_LEN} characters"));
    }
    if target.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("no spaces or control characters".to_owned());
    }
    match kind {
        HealthCheckType::Http => {
            let rest = target
                .strip_prefix("http://")
                .or_else(|| target.strip_prefix("https://"))
                .ok_or("an http:// or https:// URL")?;
            if rest.is_empty() || rest.starts_with('/') {
                return Err("the URL has no host".to_owned());
            }
            Ok(())
        }
        HealthCheckType::Tcp => {
            let (host, port) = target
                .rsplit_once(':')
                .ok_or("host:port (e.g. db.internal:5432)")?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err("host:port with a host".to_owned());
            }
            match port.parse::<u16>() {
                Ok(p) if p > 0 => Ok(()),
                _ => Err("host:port with a port of 1-65535".to_owned()),
            }
        }
    }
}

/// Whether an `http` check with `expect_status` is ok with `status`.
pub fn status_ok(expect_status: Option<u16>, status: u16) -> bool {
    match expect_status {
        Some(expected) => status == expected,
        None => (200..400).contains(&status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;
    use crate::protocol::{AgentToServer, ServerToAgent};

    fn http(name: &str) -> HealthCheckSpec {
        HealthCheckSpec {
            name: name.to_owned(),
            kind: HealthCheckType::Http,
            target: "https://127.0.0.1:8443/health".to_owned(),
            interval_seconds: 30,
            timeout_seconds: 5,
            expect_status: None,
        }
    }

    /// `health.set` with an http check (and its `expect_status`) and a tcp one.
    #[test]
    fn golden_health_set() {
        golden_s2a(
            r#"{"type":"health.set","id":"hs1","data":{"checks":[{"name":"web","type":"http","target":"https://127.0.0.1:8443/health","interval_seconds":30,"timeout_seconds":5,"expect_status":204},{"name":"db","type":"tcp","target":"db.internal:5432","interval_seconds":10,"timeout_seconds":3}]}}"#,
            "hs1",
            ServerToAgent::HealthSet(HealthSet {
                checks: vec![
                    HealthCheckSpec {
                        expect_status: Some(204),
                        ..http("web")
                    },
                    HealthCheckSpec {
                        name: "db".to_owned(),
                        kind: HealthCheckType::Tcp,
                        target: "db.internal:5432".to_owned(),
                        interval_seconds: 10,
                        timeout_seconds: 3,
                        expect_status: None,
                    },
                ],
            }),
        );
        golden_s2a(
            r#"{"type":"health.set","id":"hs2","data":{"checks":[]}}"#,
            "hs2",
            ServerToAgent::HealthSet(HealthSet { checks: vec![] }),
        );
        let (_, detail) =
            bad_data_detail(decode_s2a(r#"{"type":"health.set","id":"x","data":{}}"#));
        assert_eq!(detail, "missing field `checks`");
        let (_, detail) = bad_data_detail(decode_s2a(
            r#"{"type":"health.set","id":"x","data":{"checks":[{"name":"a","type":"icmp","target":"h","interval_seconds":10,"timeout_seconds":1}]}}"#,
        ));
        assert!(
            detail.starts_with("checks[0].type: unknown variant `icmp`"),
            "{detail}"
        );
    }

    /// `health.report` with a passing http result and a failing tcp one.
    #[test]
    fn golden_health_report() {
        golden_a2s(
            r#"{"type":"health.report","id":"hr1","data":{"results":[{"name":"web","ok":true,"latency_ms":12,"status_code":200,"checked_at":"2026-11-23T02:00:00Z"},{"name":"db","ok":false,"error":"connection refused","checked_at":"2026-11-23T02:00:01Z"}]}}"#,
            "hr1",
            AgentToServer::HealthReport(HealthReport {
                results: vec![
                    HealthCheckResult {
                        name: "web".to_owned(),
                        ok: true,
                        latency_ms: Some(12),
                        status_code: Some(200),
                        error: None,
                        checked_at: ts("2026-11-23T02:00:00Z"),
                    },
                    HealthCheckResult {
                        name: "db".to_owned(),
                        ok: false,
                        latency_ms: None,
                        status_code: None,
                        error: Some("connection refused".to_owned()),
                        checked_at: ts("2026-11-23T02:00:01Z"),
                    },
                ],
            }),
        );
    }

    /// Each rule names its field, with the check's index.
    #[test]
    fn validation_names_the_field() {
        let field = |checks: Vec<HealthCheckSpec>| {
            validate_checks(&checks, MIN_INTERVAL_SECONDS)
                .unwrap_err()
                .field
        };
        assert!(validate_checks(&[http("a"), http("b")], 10).is_ok());
        assert_eq!(field(vec![http("a"), http("a")]), "[1].name");
        assert_eq!(field(vec![http(" a")]), "[0].name");
        assert_eq!(field(vec![http("a\"b")]), "[0].name");
        assert_eq!(
            field(vec![HealthCheckSpec {
                interval_seconds: 5,
                ..http("a")
            }]),
            "[0].interval_seconds"
        );
        assert_eq!(
            field(vec![HealthCheckSpec {
                timeout_seconds: 30,
                ..http("a")
            }]),
            "[0].timeout_seconds"
        );
        assert_eq!(
            field(vec![HealthCheckSpec {
                target: "ftp://x".to_owned(),
                ..http("a")
            }]),
            "[0].target"
        );
        let tcp = HealthCheckSpec {
            kind: HealthCheckType::Tcp,
            target: "db:5432".to_owned(),
            ..http("t")
        };
        assert!(validate_checks(std::slice::from_ref(&tcp), 10).is_ok());
        for target in ["db", "db:0", ":5432", "db:x"] {
            let bad = HealthCheckSpec {
                target: target.to_owned(),
                ..tcp.clone()
            };
            assert_eq!(field(vec![bad]), "[0].target", "{target}");
        }
        assert_eq!(
            field(vec![HealthCheckSpec {
                expect_status: Some(200),
                ..tcp
            }]),
            "[0].expect_status"
        );
        assert_eq!(
            field(vec![HealthCheckSpec {
                expect_status: Some(999),
                ..http("a")
            }]),
            "[0].expect_status"
        );
        // A lower floor (tests) admits a short interval.
        let fast = HealthCheckSpec {
            interval_seconds: 2,
            timeout_seconds: 1,
            ..http("a")
        };
        assert!(validate_checks(&[fast], 1).is_ok());
    }

    /// 200–399 is ok by default; `expect_status` narrows it to one status.
    #[test]
    fn status_rules() {
        assert!(status_ok(None, 200) && status_ok(None, 302) && !status_ok(None, 500));
        assert!(status_ok(Some(503), 503) && !status_ok(Some(204), 200));
    }
}
