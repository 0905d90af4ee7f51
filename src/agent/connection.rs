//! The agent's side of the WebSocket: which URL, whether plain `ws://` is
//! allowed, the TLS connector, the upgrade with the bearer token, frame
//! encoding, and the reconnect back-off.
//!
//! - `http(s)://host[/prefix]` server URLs map to
//!   `ws(s)://host[/prefix]/api/v1/agent/ws`; a `ws(s)://` URL with a path
//!   is used as is.
//! - `ws://` (no TLS) is refused unless the host is a loopback address or
//!   `allow_insecure_ws` is set: the agent token and repository password
//!   travel on this socket.
//! - [`backoff_delay`] is the pure back-off: 1 s doubling to 60 s, ±20 %
//!   jitter; [`Backoff`] resets it after a session that lasted
//!   [`STABLE_SESSION`].
//!
//! The session logic (hello, replay, heartbeats, dispatch) lives in
//! [`daemon`](super::daemon), which owns the agent's state.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::SinkExt;
use reqwest::Url;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::config::{AgentConfig, Secret};
use super::tls::{self, TlsError};
use crate::protocol::{AgentToServer, Envelope};

/// The agent WebSocket path under the server's base URL.
pub const WS_PATH: &str = "/api/v1/agent/ws";

/// Longest a connection attempt (TCP, TLS, upgrade) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Longest sending one frame may take before the connection is considered
/// dead.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// First reconnect delay.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);

/// Largest reconnect delay (before jitter).
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Jitter applied to every delay: ±20 %.
pub const BACKOFF_JITTER: f64 = 0.2;

/// A session that lasted this long resets the back-off to its start.
pub const STABLE_SESSION: Duration = Duration::from_secs(60);

/// The agent's WebSocket to the server.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server URL does not parse or has an unsupported scheme.
    #[error("bad server URL {url:?}: {reason}")]
    BadUrl {
        /// The URL (it never carries a secret).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// `ws://` to a non-loopback host without `allow_insecure_ws`.
    #[error("refusing unencrypted ws:// to {host}: use https:// or wss://, or set allow_insecure_ws (--allow-insecure-ws)")]
    InsecureRefused {
        /// The host.
        host: String,
    },
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server refused the agent token (HTTP 401 before the upgrade).
    #[error("the server refused the agent token (HTTP 401): the host may have been revoked; re-enrol it")]
    Unauthorized,
    /// The server answered the upgrade with another HTTP status.
    #[error("the server answered the WebSocket upgrade with HTTP {0}")]
    Http(StatusCode),
    /// Network, TLS or WebSocket failure.
    #[error("connection failed: {0}")]
    Ws(Box<tungstenite::Error>),
    /// The attempt took longer than [`CONNECT_TIMEOUT`].
    #[error("connection attempt timed out after {0:?}")]
    Timeout(Duration),
}

impl From<tungstenite::Error> for ConnectError {
    fn from(err: tungstenite::Error) -> Self {
        Self::Ws(Box::new(err))
    }
}

/// The WebSocket URL for a configured server URL, checked against the
/// plain-text rule.
pub fn ws_url(server_url: &str, allow_insecure: bool) -> Result<Url, ConnectError> {
    let bad = |reason: &str| ConnectError::BadUrl {
        url: server_url.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(server_url.trim()).map_err(|err| bad(&err.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the server URL are not supported"));
    }
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(bad("the scheme must be http, https, ws or wss")),
    };
    let keep_path = matches!(url.scheme(), "ws" | "wss") && url.path() != "/";
    url.set_scheme(scheme)
        .map_err(|()| bad("cannot switch to a WebSocket scheme"))?;
    if !keep_path {
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{WS_PATH}"));
    }
    url.set_query(None);
    url.set_fragment(None);
    let host = url.host_str().ok_or_else(|| bad("no host"))?.to_owned();
    if scheme == "ws" && !allow_insecure && !is_loopback_host(&host) {
        return Err(ConnectError::InsecureRefused { host });
    }
    Ok(url)
}

/// Whether `host` (as in a URL) names this machine: `localhost`, 127/8,
/// `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether an `http://` URL may carry secrets (enrolment): loopback only,
/// or when explicitly allowed.
pub fn check_http_url(url: &Url, allow_insecure: bool) -> Result<(), ConnectError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = url.host_str().unwrap_or_default();
            if allow_insecure || is_loopback_host(host) {
                Ok(())
            } else {
                Err(ConnectError::InsecureRefused {
                    host: host.to_owned(),
                })
            }
        }
        _ => Err(ConnectError::BadUrl {
            url: url.to_string(),
            reason: "the scheme must be http or https".to_owned(),
        }),
    }
}

/// Opens the WebSocket: TLS per the config, `Authorization: Bearer` on
/// the upgrade, all within [`CONNECT_TIMEOUT`].
pub async fn connect(config: &AgentConfig) -> Result<WsStream, ConnectError> {
    let url = ws_url(&config.server_url, config.allow_insecure_ws)?;
    let connector = if url.scheme() == "wss" {
        Connector::Rustls(tls::client_config(config.ca_file.as_deref())?)
    } else {
        Connector::Plain
    };
    let request = upgrade_request(&url, &config.agent_token)?;
    let attempt =
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector));
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Err(_) => Err(ConnectError::Timeout(CONNECT_TIMEOUT)),
        Ok(Ok((stream, _response))) => Ok(stream),
        Ok(Err(tungstenite::Error::Http(response))) => {
            if response.status() == StatusCode::UNAUTHORIZED {
                Err(ConnectError::Unauthorized)
            } else {
                Err(ConnectError::Http(response.status()))
            }
        }
        Ok(Err(err)) => Err(ConnectError::from(err)),
    }
}

fn upgrade_request(
    url: &Url,
    token: &Secret,
) -> Result<tungstenite::handshake::client::Request, ConnectError> {
    let mut request = url.as_str().into_client_request()?;
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        ConnectError::BadUrl {
            url: url.to_string(),
            reason: "the agent token contains characters not allowed in a header".to_owned(),
        }
    })?;
    value.set_sensitive(true);
    request.headers_mut().insert(header::AUTHORIZATION, value);
    Ok(request)
}

/// Sends one envelope as a text frame, within [`SEND_TIMEOUT`].
pub async fn send(
    ws: &mut WsStream,
    envelope: &Envelope<AgentToServer>,
) -> Result<(), ConnectError> {
    let frame = Message::text(envelope.encode());
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(frame)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ConnectError::Timeout(SEND_TIMEOUT)),
    }
}

/// Sends one binary frame (a download's data) with the same time limit.
pub async fn send_binary(
    ws: &mut WsStream,
    frame: tokio_tungstenite::tungstenite::Bytes,
) -> Result<(), ConnectError> {
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::Binary(frame))).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ConnectError::Timeout(SEND_TIMEOUT)),
    }
}

/// The delay before reconnect attempt number `attempt` (0 for the first
/// retry): `BACKOFF_INITIAL × 2^attempt` capped at `BACKOFF_MAX`, scaled by
/// a jitter factor in `[0.8, 1.2)` taken from `unit` (a random number in
/// `[0, 1)`; out-of-range values are clamped).
pub fn backoff_delay(attempt: u32, unit: f64) -> Duration {
    let base = BACKOFF_INITIAL
        .saturating_mul(2u32.saturating_pow(attempt.min(31)))
        .min(BACKOFF_MAX);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let factor = 1.0 - BACKOFF_JITTER + 2.0 * BACKOFF_JITTER * unit;
    base.mul_f64(factor)
}

/// Reconnect back-off state: the attempt counter and its reset rule.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// A back-off at its start.
    pub fn new() -> Self {
        Self::default()
    }

    /// The delay before the next attempt, advancing the counter. `unit` is
    /// the jitter's random number in `[0, 1)`.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let delay = backoff_delay(self.attempt, unit);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Called when a session ends after lasting `lasted`: a stable session
    /// resets the back-off.
    pub fn session_ended(&mut self, lasted: Duration) {
        if lasted >= STABLE_SESSION {
            self.attempt = 0;
        }
    }

    /// Attempts since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// A random number in `[0, 1)` for the jitter (0.5 if the OS has no
/// randomness to give, which only removes the jitter).
pub fn jitter_unit() -> f64 {
    match getrandom::u64() {
        Ok(bits) => (bits >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// http(s) base URLs map to ws(s) with the agent path; ws URLs with a
    /// path are kept.
    #[test]
    fn url_mapping() {
        let cases = [
            (
                "https://backup.example.com",
                "wss://backup.example.com/api/v1/agent/ws",
            ),
            (
                "https://backup.example.com:8443/",
                "wss://backup.example.com:8443/api/v1/agent/ws",
            ),
            (
                "https://example.com/rm/",
                "wss://example.com/rm/api/v1/agent/ws",
            ),
            (
                "http://127.0.0.1:8080",
                "ws://127.0.0.1:8080/api/v1/agent/ws",
            ),
            (
                "http://localhost:8080",
                "ws://localhost:8080/api/v1/agent/ws",
            ),
            ("http://[::1]:8080", "ws://[::1]:8080/api/v1/agent/ws"),
            ("wss://h.example/custom/ws", "wss://h.example/custom/ws"),
            ("wss://h.example", "wss://h.example/api/v1/agent/ws"),
        ];
        for (input, expected) in cases {
            assert_eq!(ws_url(input, false).unwrap().as_str(), expected, "{input}");
        }
    }

    /// Plain ws:// is refused off loopback unless allowed.
    #[test]
    fn insecure_rule() {
        for url in [
            "http://10.0.0.5:8080",
            "ws://backup.example/x",
            "http://127.example.com",
        ] {
            assert!(
                matches!(
                    ws_url(url, false),
                    Err(ConnectError::InsecureRefused { .. })
                ),
                "{url}"
            );
            assert!(ws_url(url, true).is_ok(), "{url}");
        }
        assert!(matches!(
            ws_url("ftp://x", true),
            Err(ConnectError::BadUrl { .. })
        ));
        assert!(matches!(
            ws_url("not a url", true),
            Err(ConnectError::BadUrl { .. })
        ));
        assert!(matches!(
            ws_url("https://u:p@h.example", true),
            Err(ConnectError::BadUrl { .. })
        ));
        assert!(is_loopback_host("127.3.4.5"));
        assert!(is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("192.168.1.1"));

        let http = Url::parse("http://10.1.1.1/").unwrap();
        assert!(check_http_url(&http, false).is_err());
        assert!(check_http_url(&http, true).is_ok());
        assert!(check_http_url(&Url::parse("https://x/").unwrap(), false).is_ok());
    }

    /// Delays double from 1 s to 60 s, with ±20 % jitter.
    #[test]
    fn backoff_curve() {
        let mid: Vec<u64> = (0..9)
            .map(|n| backoff_delay(n, 0.5).as_millis() as u64)
            .collect();
        assert_eq!(
            mid,
            [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]
        );
        assert_eq!(backoff_delay(0, 0.0), Duration::from_millis(800));
        assert!(backoff_delay(0, 0.999_999) < Duration::from_millis(1200));
        assert!(backoff_delay(0, 0.999_999) > Duration::from_millis(1199));
        assert_eq!(backoff_delay(u32::MAX, 0.0), Duration::from_secs(48));
        assert_eq!(backoff_delay(2, f64::NAN), Duration::from_secs(4));
        assert_eq!(backoff_delay(2, 7.0), Duration::from_millis(4800));
    }

    /// The counter advances per attempt and resets only after a session
    /// that lasted a minute.
    #[test]
    fn backoff_reset_rule() {
        let mut backoff = Backoff::new();
        assert_eq!(backoff.next_delay(0.5), Duration::from_secs(1));
        assert_eq!(backoff.next_delay(0.5), Duration::from_secs(2));
        backoff.session_ended(Duration::from_secs(59));
        assert_eq!(backoff.next_delay(0.5), Duration::from_secs(4));
        backoff.session_ended(Duration::from_secs(60));
        assert_eq!(backoff.attempt(), 0);
        assert_eq!(backoff.next_delay(0.5), Duration::from_secs(1));
    }

    /// Jitter numbers are in [0, 1).
    #[test]
    fn jitter_range() {
        for _ in 0..100 {
            let unit = jitter_unit();
            assert!((0.0..1.0).contains(&unit));
        }
    }

    /// The upgrade request carries the bearer token, marked sensitive.
    #[test]
    fn upgrade_has_bearer() {
        let url = ws_url("http://127.0.0.1:1", false).unwrap();
        let request = upgrade_request(&url, &Secret::new("tok")).unwrap();
        let value = request.headers().get(header::AUTHORIZATION).unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer tok");
        assert!(value.is_sensitive());
        assert!(upgrade_request(&url, &Secret::new("bad\ntoken")).is_err());
    }
}
