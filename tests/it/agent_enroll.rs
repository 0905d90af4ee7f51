//! `restic-manager-agent enroll` and `run` from the command line, against a
//! minimal HTTP server written here: the enrolment request, the config file
//! (mode 0600), the refusal to overwrite without `--force`, the one-line
//! error on a refused token, and `run`'s refusal of plain ws:// off
//! loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;

use restic_manager::agent::AgentConfig;
use restic_manager::protocol::EnrollRequest;

/// Serves `responses` (status line, JSON body) to consecutive requests and
/// reports each request's path and body.
fn http_server(
    responses: Vec<(&'static str, String)>,
) -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for (status, body) in responses {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_owned();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut request_body = vec![0; length];
            reader.read_exact(&mut request_body).unwrap();
            tx.send((path, String::from_utf8(request_body).unwrap()))
                .unwrap();
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
    });
    (url, rx)
}

fn agent(args: &[&str]) -> Output {
    Command::new(crate::common::agent_proc::agent_binary())
        .args(args)
        .env("RESTIC_MANAGER_LOG", "warn")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn enroll(url: &str, token: &str, config: &Path, extra: &[&str]) -> Output {
    let config = config.to_str().unwrap();
    let mut args = vec![
        "enroll", "--server", url, "--token", token, "--config", config,
    ];
    args.extend_from_slice(extra);
    agent(&args)
}

/// Enrolment posts the token and host facts, writes a 0600 config with
/// the host id and agent token, refuses to overwrite it without --force,
/// and replaces it with --force.
#[test]
fn enroll_writes_the_config_once() {
    let ok = |host: &str, token: &str| {
        (
            "200 OK",
            format!(r#"{{"host_id":"{host}","agent_token":"{token}"}}"#),
        )
    };
    let (url, requests) = http_server(vec![
        ok("host-7", "agent-secret-1"),
        ok("host-8", "agent-secret-2"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc").join("agent.toml");

    let output = enroll(&url, "enrol-token-abc", &path, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("host-7"), "{stdout}");
    assert!(!stdout.contains("agent-secret-1") && !stderr(&output).contains("agent-secret-1"));
    let (path_seen, body) = requests.recv().unwrap();
    assert_eq!(path_seen, "/api/v1/agent/enroll");
    let request: EnrollRequest = serde_json::from_str(&body).unwrap();
    assert_eq!(request.token, "enrol-token-abc");
    assert!(!request.hostname.is_empty());
    assert_eq!(request.os, "linux");

    let config = AgentConfig::load(&path).unwrap();
    assert_eq!(config.host_id, "host-7");
    assert_eq!(config.agent_token.expose(), "agent-secret-1");
    assert_eq!(config.server_url, url);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let output = enroll(&url, "enrol-token-def", &path, &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--force"), "{}", stderr(&output));
    assert_eq!(AgentConfig::load(&path).unwrap().host_id, "host-7");

    let output = enroll(&url, "enrol-token-def", &path, &["--force"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(AgentConfig::load(&path).unwrap().host_id, "host-8");
}

/// A refused token is one clear error line and no config.
#[test]
fn refused_token_is_one_line() {
    let (url, _requests) = http_server(vec![(
        "401 Unauthorized",
        r#"{"error":{"code":"unauthorized","message":"bad token"}}"#.to_owned(),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    let output = enroll(&url, "used-token", &path, &[]);
    assert!(!output.status.success());
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("error: the server refused the enrolment token"),
        "{text}"
    );
    assert!(!text.contains("used-token"));
    assert!(!path.exists());
}

/// Plain http to a non-loopback server is refused before any request,
/// unless explicitly allowed; `run` refuses ws:// off loopback the same way.
#[test]
fn insecure_urls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    let output = enroll("http://192.0.2.10:8080", "t", &path, &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("unencrypted"),
        "{}",
        stderr(&output)
    );

    let mut config = AgentConfig::new(
        "http://192.0.2.10:8080",
        "h",
        restic_manager::agent::Secret::new("t"),
    );
    config.state_dir = dir.path().join("state");
    config.save(&path).unwrap();
    let output = agent(&["run", "--config", path.to_str().unwrap()]);
    assert!(!output.status.success());
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("--allow-insecure-ws"), "{text}");

    let output = agent(&[
        "run",
        "--config",
        dir.path().join("missing.toml").to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("missing.toml"));
}
