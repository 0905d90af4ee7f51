//! The Windows agent (`restic-manager-agent.exe`, cross-built for
//! x86_64-pc-windows-gnu) run under Wine against a Linux test server on
//! loopback: it enrols with its own `enroll` command, comes online with
//! `os = "windows"`, and a backup job fails cleanly with "restic not
//! found" (there is no restic.exe in the Wine prefix).
//!
//! Runs when `RESTIC_MANAGER_TEST_WINDOWS_AGENT` names the .exe
//! (`scripts/test` builds it with `scripts/check-windows` and sets it);
//! skipped otherwise, like the PostgreSQL runs without their URL. Needs
//! Wine (`apt-get install wine64`; `RESTIC_MANAGER_WINE` names another
//! loader) and MinGW's gcc: Debian 12's Wine 8 has no
//! `bcryptprimitives.dll`, which Rust's standard library imports, so the
//! test builds a stand-in (`wine/bcryptprimitives.c`) beside the .exe.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::json;

use crate::common::e2e::{get, post, put, run_job, wait_online};

/// The .exe under test, from `RESTIC_MANAGER_TEST_WINDOWS_AGENT`.
const EXE_ENV: &str = "RESTIC_MANAGER_TEST_WINDOWS_AGENT";

/// The Wine loader: `RESTIC_MANAGER_WINE`, else Debian's `wine64`
/// package's loader, else `wine64` or `wine` on PATH.
fn wine_loader() -> PathBuf {
    if let Some(path) = std::env::var_os("RESTIC_MANAGER_WINE") {
        return PathBuf::from(path);
    }
    let debian = Path::new("/usr/lib/wine/wine64");
    if debian.exists() {
        return debian.to_owned();
    }
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .flat_map(|dir| [dir.join("wine64"), dir.join("wine")])
        .find(|candidate| candidate.exists());
    on_path.unwrap_or_else(|| {
        panic!("{EXE_ENV} is set but there is no Wine (apt-get install wine64, or set RESTIC_MANAGER_WINE)")
    })
}

/// `path` as the Windows program sees it: Wine maps `Z:` to `/`.
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// A Wine prefix of its own in a temp dir, and the .exe copied into it
/// with the `bcryptprimitives.dll` stand-in beside it.
struct WineAgent {
    loader: PathBuf,
    prefix: PathBuf,
    exe: PathBuf,
}

impl WineAgent {
    async fn prepare(exe: &Path, dir: &Path) -> Self {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let copy = bin.join("restic-manager-agent.exe");
        std::fs::copy(exe, &copy)
            .unwrap_or_else(|e| panic!("cannot copy {} ({EXE_ENV}): {e}", exe.display()));
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/wine");
        let gcc = tokio::process::Command::new("x86_64-w64-mingw32-gcc")
            .args(["-O2", "-shared", "-o"])
            .arg(bin.join("bcryptprimitives.dll"))
            .arg(sources.join("bcryptprimitives.c"))
            .arg(sources.join("bcryptprimitives.def"))
            .arg("-ladvapi32")
            .output()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run x86_64-w64-mingw32-gcc (apt-get install gcc-mingw-w64-x86-64): {e}"
                )
            });
        assert!(
            gcc.status.success(),
            "building bcryptprimitives.dll failed: {}",
            String::from_utf8_lossy(&gcc.stderr)
        );
        Self {
            loader: wine_loader(),
            prefix: dir.join("wineprefix"),
            exe: copy,
        }
    }

    /// `wine restic-manager-agent.exe <args>` in this prefix.
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.loader);
        command
            .arg(&self.exe)
            .args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            // No Mono or Gecko installer prompts while the prefix is made.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("RESTIC_MANAGER_LOG", "debug")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Stops the prefix's wineserver and whatever still runs in it.
    async fn shut_down(&self) {
        let server = self.loader.with_file_name("wineserver");
        let server = if server.exists() {
            server
        } else {
            PathBuf::from("wineserver")
        };
        // The prefix is a temp dir about to go: a failure here only leaves
        // a wineserver that exits by itself once its clients are gone.
        let _ = tokio::process::Command::new(server)
            .arg("-k")
            .env("WINEPREFIX", &self.prefix)
            .status()
            .await;
    }
}

/// Enrol under Wine → online as a Windows host → a backup fails with
/// "restic not found", reported by the agent like any failed job.
#[actix_web::test]
async fn windows_agent_enrols_and_reports_a_missing_restic() {
    let Some(exe) = std::env::var_os(EXE_ENV).map(PathBuf::from) else {
        eprintln!(
            "skipped: {EXE_ENV} is not set (scripts/test sets it after scripts/check-windows)"
        );
        return;
    };
    let app = crate::common::server::spawn_app().await;
    let work = tempfile::tempdir().unwrap();
    let wine = WineAgent::prepare(&exe, work.path()).await;
    let config = work.path().join("agent.toml");
    let state = work.path().join("state");

    let token = app.enrollment_token().await;
    let enrolled = wine
        .command(&[
            "enroll",
            "--server",
            &app.base_url,
            "--config",
            &windows_path(&config),
        ])
        .env("RESTIC_MANAGER_ENROLL_TOKEN", &token)
        .output()
        .await
        .unwrap();
    assert!(
        enrolled.status.success(),
        "enroll under Wine failed ({}): {}",
        enrolled.status,
        String::from_utf8_lossy(&enrolled.stderr)
    );
    let host = restic_manager::agent::AgentConfig::load(&config)
        .unwrap()
        .host_id;

    let log_path = work.path().join("agent.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut agent = wine
        .command(&[
            "run",
            "--config",
            &windows_path(&config),
            "--state-dir",
            &windows_path(&state),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let agent_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    wait_online(&app, &host).await;
    let seen = get(&app, &format!("/hosts/{host}")).await;
    assert_eq!(seen["os"], "windows", "{seen}\nagent log:\n{}", agent_log());
    assert_eq!(seen["arch"], "amd64", "{seen}");

    put(
        &app,
        &format!("/hosts/{host}/repository"),
        json!({"url": windows_path(&work.path().join("repo")), "password": "wine-repo-password"}),
    )
    .await;
    post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "documents", "includes": ["C:\\Users"]}),
    )
    .await;
    let backup = run_job(
        &app,
        &host,
        json!({"kind": "backup", "source_group": "documents"}),
    )
    .await;
    assert_eq!(
        backup["status"],
        "failed",
        "{backup}\nagent log:\n{}",
        agent_log()
    );
    let error = backup["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("restic not found"),
        "{backup}\nagent log:\n{}",
        agent_log()
    );

    agent.start_kill().unwrap();
    agent.wait().await.unwrap();
    wine.shut_down().await;
    app.stop().await;
}
