//! What runs where (issue 16, point 4): `--version` of both binaries
//! prints the version, the git commit and the protocol version, and
//! `GET /api/v1/version` answers the same facts.

use std::process::Command;

use reqwest::StatusCode;
use restic_manager::protocol::PROTOCOL_VERSION;
use serde_json::json;

use crate::common::agent_proc::agent_binary;
use crate::common::api::get;
use crate::common::server::{client, spawn_app};

/// The line `--version` prints after the program's name.
fn expected_line() -> String {
    format!(
        "{} (commit {}, protocol {PROTOCOL_VERSION})",
        restic_manager::VERSION,
        restic_manager::GIT_COMMIT
    )
}

/// `PROGRAM --version` and `-V`: exit 0, one line on stdout.
fn version_output(program: &std::path::Path) -> String {
    let mut printed = Vec::new();
    for flag in ["--version", "-V"] {
        let out = Command::new(program).arg(flag).output().unwrap();
        assert!(out.status.success(), "{flag}: {out:?}");
        assert!(out.stderr.is_empty(), "{flag}: {out:?}");
        printed.push(String::from_utf8(out.stdout).unwrap());
    }
    assert_eq!(printed[0], printed[1], "--version and -V agree");
    printed.swap_remove(0)
}

/// The server and the agent print their name, version, commit and protocol.
#[test]
fn both_binaries_print_version_commit_and_protocol() {
    let server = version_output(env!("CARGO_BIN_EXE_restic-manager").as_ref());
    assert_eq!(server, format!("restic-manager {}\n", expected_line()));
    let agent = version_output(&agent_binary());
    assert_eq!(agent, format!("restic-manager-agent {}\n", expected_line()));
}

/// In a git checkout the commit is its HEAD (the build script follows it),
/// else `unknown`.
#[test]
fn the_commit_is_the_checkouts_head() {
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8(out.stdout).unwrap().trim().to_owned());
    match head {
        // A packager's override wins over git (build.rs).
        Some(_) if std::env::var_os("RESTIC_MANAGER_GIT_COMMIT").is_some() => {}
        Some(head) => assert_eq!(restic_manager::GIT_COMMIT, head),
        None => assert_eq!(restic_manager::GIT_COMMIT, "unknown"),
    }
}

/// `GET /version` answers the version, commit, protocol and schema to any
/// user, and nothing without credentials.
#[actix_web::test]
async fn the_api_answers_the_same_facts() {
    let app = spawn_app().await;
    let (status, body) = get(&app, &app.admin_token, "/version").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "version": restic_manager::VERSION,
            "commit": restic_manager::GIT_COMMIT,
            "protocol": PROTOCOL_VERSION,
            "schema": restic_manager::store::binary_schema(),
        })
    );
    let anonymous = client().get(app.api("/version")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}
