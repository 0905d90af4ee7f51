//! The `restic-manager` binary as an operator runs it: `serve` on a fresh
//! data dir, the admin commands, and one-line errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_restic-manager"));
    c.env_remove("RESTIC_MANAGER_ADMIN_PASSWORD")
        .env_remove("RESTIC_MANAGER_DATABASE_URL")
        .env_remove("RESTIC_MANAGER_DATA_DIR")
        .env("RESTIC_MANAGER_LOG", "warn");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// First start on an empty data dir prints the admin password once, answers
/// /healthz, and stops cleanly on SIGTERM; the second start prints none.
#[test]
fn serve_first_start_prints_admin_password_and_answers_healthz() {
    let dir = tempfile::tempdir().unwrap();
    for first in [true, false] {
        let port = free_port();
        let mut child = bin()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut printed = String::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "server exited: {printed}"
            );
            printed.push_str(&line);
            if line.starts_with("listening on") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no 'listening on' line: {printed}"
            );
        }
        assert_eq!(
            printed.contains("created user admin with password: "),
            first,
            "{printed}"
        );
        let body = plain_http::get(&format!("http://127.0.0.1:{port}/healthz"));
        assert_eq!(body, "ok\n");
        let ready = plain_http::get(&format!("http://127.0.0.1:{port}/readyz"));
        assert_eq!(ready, "ready\n");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "exit status after SIGTERM: {status}");
    }
    assert!(dir.path().join("restic-manager.db").exists());
    let key = std::fs::read(dir.path().join("secret.key")).unwrap();
    assert_eq!(key.len(), 32);
}

/// `token create` prints exactly one line, the token, on stdout.
#[test]
fn token_create_prints_only_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["token", "create", "--ttl", "24h", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout:?}");
    assert_eq!(lines[0].len(), 64);
    assert!(lines[0].chars().all(|c| c.is_ascii_hexdigit()));
}

/// `user add --password-stdin` then `api-token create` for that user works;
/// a duplicate user and an unknown user are one-line errors.
#[test]
fn user_add_and_api_token_create() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args([
            "user",
            "add",
            "--username",
            "ops",
            "--role",
            "operator",
            "--password-stdin",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"long enough secret\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = bin()
        .args(["api-token", "create", "--username", "ops", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim().len(), 64);

    let out = bin()
        .args(["api-token", "create", "--username", "nobody", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("nobody"), "{err}");
}

/// Bad flags, an unreachable database and an unreadable key file are one
/// clear line on stderr and a non-zero exit.
#[test]
fn errors_are_one_line_and_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["user", "add", "--role", "king"])
        .output()
        .unwrap();
    assert!(!out.status.success());

    let out = bin()
        .args([
            "migrate",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: cannot open database"), "{err}");

    let key = dir.path().join("bad.key");
    std::fs::write(&key, b"short").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--key-file")
        .arg(&key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad.key"), "{err}");
}

/// `migrate` applies the migrations to a fresh database and exits 0.
#[test]
fn migrate_applies_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("migrations up to date"));
}

mod plain_http {
    /// GET with the blocking std TCP stack (no async runtime in these tests).
    pub fn get(url: &str) -> String {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        use std::io::{Read, Write};
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        stream.read_to_string(&mut resp).unwrap();
        resp.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }
}

/// `serve` on a port that is already taken, or with a TLS certificate that
/// cannot be read, fails with one error line and exit status 1, not a panic
/// of the half-started actors.
#[test]
fn serve_startup_failures_are_one_line_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let missing = dir.path().join("missing.pem");
    let cases: [(Vec<String>, &str); 2] = [
        (vec!["--listen".into(), addr.clone()], addr.as_str()),
        (
            vec![
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--tls-cert".into(),
                missing.display().to_string(),
                "--tls-key".into(),
                missing.display().to_string(),
            ],
            "missing.pem",
        ),
    ];
    for (args, named) in cases {
        let out = bin()
            .arg("serve")
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(named), "{err}");
    }
}

/// Without `RESTIC_MANAGER_LOG` the admin commands log only warnings: a
/// success prints its result and nothing on stderr, and an error is one
/// line on stderr (README), not preceded by the store's info lines.
#[test]
fn admin_commands_are_quiet_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = |args: &[&str]| {
        bin()
            .env_remove("RESTIC_MANAGER_LOG")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = quiet(&["migrate"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");

    let out = quiet(&["token", "create", "--ttl", "1h"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim().len(), 64);

    let out = quiet(&["api-token", "create", "--username", "nobody"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("nobody"),
        "{err}"
    );
}

/// `serve` at its default log level (info, no `RESTIC_MANAGER_LOG`): an
/// unusable key file or a busy port is still one line on stderr, because
/// both are checked before the server logs anything.
#[test]
fn serve_startup_errors_are_one_line_at_the_default_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("bad.key");
    std::fs::write(&key, b"short").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let cases: [(Vec<String>, &str); 2] = [
        (
            vec![
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--key-file".into(),
                key.display().to_string(),
            ],
            "bad.key",
        ),
        (vec!["--listen".into(), addr.clone()], addr.as_str()),
    ];
    for (args, named) in cases {
        let out = bin()
            .env_remove("RESTIC_MANAGER_LOG")
            .arg("serve")
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(named), "{err}");
    }
}

/// A bad flag, a missing argument or a bad value is one line on stderr
/// (not clap's usage block) and a non-zero exit, for both binaries;
/// `--help` still prints the whole help on stdout.
#[test]
fn usage_errors_are_one_line() {
    let agent = || Command::new(crate::common::agent_proc::agent_binary());
    let cases: [(Command, &[&str], &str); 5] = [
        (bin(), &["serve", "--bogus"], "--bogus"),
        (bin(), &["user", "add", "--role", "king"], "king"),
        (bin(), &["api-token", "create"], "--username"),
        (bin(), &["token", "create", "--ttl", "soon"], "soon"),
        (agent(), &["enroll", "--server", "http://x"], "--token"),
    ];
    for (mut command, args, named) in cases {
        let out = command
            .env_remove("RESTIC_MANAGER_ENROLL_TOKEN")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(named), "{err}");
    }
    let help = bin().args(["token", "create", "--help"]).output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8(help.stdout).unwrap().contains("--ttl"));
}

/// Logs written to a pipe or file (journald, a log file) are plain text:
/// no terminal colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .env("RESTIC_MANAGER_LOG", "info")
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("database ready"), "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes in {err:?}");
}
