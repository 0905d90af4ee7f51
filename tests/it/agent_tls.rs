//! The agent over `wss://` with a private CA: the server's certificate is
//! accepted when the CA file is configured and refused otherwise. The
//! server here is rustls plus tungstenite's blocking handshake on a thread.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::TcpListener;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use restic_manager::agent::{self, AgentConfig, Secret};
use restic_manager::protocol::{AgentToServer, Envelope};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::{self, Message};

/// Test-only CA (made with openssl for these tests; valid until 2126).
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBqDCCAU+gAwIBAgIUVy8UEYlJqYZcsFhJ/Df4UF9bsM4wCgYIKoZIzj0EAwIw
ITEfMB0GA1UEAwwWcmVzdGljLW1hbmFnZXIgdGVzdCBDQTAgFw0yNjExMjMxNzA0
MjJaGA8yMTI2MTAzMDE3MDQyMlowITEfMB0GA1UEAwwWcmVzdGljLW1hbmFnZXIg
dGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABI1jP80KBshZDYxbCudF
QHA3mCHzNbwFi2T4l6ZSTyVoMQeehfqJacj6Di4pDoiLmpigB7ZyEeWxrwt7FqRU
SGWjYzBhMB0GA1UdDgQWBBS+rt5w8MMC1J8sCaDU+vXwgev3GjAfBgNVHSMEGDAW
gBS+rt5w8MMC1J8sCaDU+vXwgev3GjAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB
/wQEAwIBBjAKBggqhkjOPQQDAgNHADBEAiB/h/jSwD3Qv7Vi+SyXgIMblzcoMD2B
C1/0m24fbMflHQIgO8QQdHxK/L6TkhN8tKcgrenOw/vCmOhaVu6C8uoRHhU=
-----END CERTIFICATE-----\n";

/// Certificate for `localhost` and 127.0.0.1, signed by [`CA_PEM`].
pub(crate) const LEAF_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBzDCCAXKgAwIBAgIUZGwbNp8TYTfERW62zcY9TxB58rswCgYIKoZIzj0EAwIw
ITEfMB0GA1UEAwwWcmVzdGljLW1hbmFnZXIgdGVzdCBDQTAgFw0yNjExMjMxNzA0
MjJaGA8yMTI2MTAzMDE3MDQyMlowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYH
KoZIzj0CAQYIKoZIzj0DAQcDQgAEzCjyZ2nLxvYLdpk8teb/tmd7OBiSiGnHn8oi
S7sDyq4EajodtfUcmEf6P6EX2WBLqvv9EOPRGldW/2g6p3FYJ6OBkjCBjzAaBgNV
HREEEzARgglsb2NhbGhvc3SHBH8AAAEwDAYDVR0TAQH/BAIwADAOBgNVHQ8BAf8E
BAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwEwHQYDVR0OBBYEFLDPSizkoR0uk60P
3a3cJeNHz0owMB8GA1UdIwQYMBaAFL6u3nDwwwLUnywJoNT69fCB6/caMAoGCCqG
SM49BAMCA0gAMEUCIQC4jvZBNA1GN+Pxc0eS/eQN39HIc8f8sCkfQtCdbf3ehQIg
BpFKEl5944KF7gqdFIPM/6lGfOTnibVTy7Ds65KXgbo=
-----END CERTIFICATE-----\n";

/// The private key of [`LEAF_PEM`] (test only).
pub(crate) const LEAF_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgM/4FJdBgLAE6E2fg
zIfVYFmzsXaHkbPACXRqoiCXgHShRANCAATMKPJnacvG9gt2mTy15v+2Z3s4GJKI
acefyiJLuwPKrgRqOh219RyYR/o/oRfZYEuq+/0Q49EaV1b/aDqncVgn
-----END PRIVATE KEY-----\n";

/// A TLS WebSocket server on 127.0.0.1 that reports, per connection, the
/// `Authorization` header and the first message's type.
fn tls_server() -> (u16, mpsc::Receiver<(String, String)>) {
    restic_manager::agent::tls::install_crypto_provider();
    let certs = vec![CertificateDer::from_pem_slice(LEAF_PEM.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(LEAF_KEY_PEM.as_bytes()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let config = config.clone();
            let tx = tx.clone();
            thread::spawn(move || {
                tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let tls = rustls::ServerConnection::new(config).unwrap();
                let stream = rustls::StreamOwned::new(tls, tcp);
                let (auth_tx, auth_rx) = mpsc::channel();
                // The signature is tungstenite's Callback; its error type is large.
                #[allow(clippy::result_large_err)]
                let callback =
                    |request: &tungstenite::handshake::server::Request,
                     response: tungstenite::handshake::server::Response| {
                        let auth = request
                            .headers()
                            .get("authorization")
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        auth_tx.send(auth).unwrap();
                        Ok(response)
                    };
                // A client that refuses the certificate fails the handshake.
                let Ok(mut ws) = tungstenite::accept_hdr(stream, callback) else {
                    return;
                };
                let auth = auth_rx.recv().unwrap();
                if let Ok(Message::Text(text)) = ws.read() {
                    let envelope = Envelope::<AgentToServer>::decode(text.as_str()).unwrap();
                    let kind = match envelope.message {
                        AgentToServer::Hello(_) => "hello",
                        _ => "other",
                    };
                    let _ = tx.send((auth, kind.to_owned()));
                }
            });
        }
    });
    (port, rx)
}

fn config(port: u16, ca_file: Option<&std::path::Path>, state: &std::path::Path) -> AgentConfig {
    let mut config = AgentConfig::new(
        format!("https://localhost:{port}"),
        "tls-host",
        Secret::new("tls-agent-token"),
    );
    config.ca_file = ca_file.map(std::path::Path::to_owned);
    config.state_dir = state.to_owned();
    config
}

async fn run_for(
    config: AgentConfig,
    rx: &mpsc::Receiver<(String, String)>,
    wait: Duration,
) -> Option<(String, String)> {
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = tokio::spawn(agent::run(config, async {
        let _ = stopped.await;
    }));
    let deadline = std::time::Instant::now() + wait;
    let mut seen = None;
    while std::time::Instant::now() < deadline {
        if let Ok(item) = rx.try_recv() {
            seen = Some(item);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    agent.await.unwrap().unwrap();
    seen
}

/// With the CA file the agent connects over wss://, authenticates with its
/// bearer token and says hello.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_custom_ca() {
    let (port, rx) = tls_server();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, CA_PEM).unwrap();
    let seen = run_for(
        config(port, Some(&ca), &dir.path().join("state")),
        &rx,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        seen,
        Some(("Bearer tls-agent-token".to_owned(), "hello".to_owned()))
    );
}

/// Without the CA file the certificate is not trusted: no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_without_ca_is_refused() {
    let (port, rx) = tls_server();
    let dir = tempfile::tempdir().unwrap();
    let seen = run_for(config(port, None, dir.path()), &rx, Duration::from_secs(3)).await;
    assert_eq!(seen, None);
}
