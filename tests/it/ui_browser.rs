//! The operator's journey in a real headless Chromium (fantoccini over
//! chromedriver) against a real server, the real agent daemon in-process
//! and the real `restic`: log in, create an enrolment token, enrol the
//! agent with it, see it come online on the dashboard, configure its
//! repository, a source group and a schedule, run a backup and watch the
//! job page update live (no reload), find the snapshot and today's green
//! calendar cell; open the snapshot in the file browser, select two files
//! and restore them into another folder (bytes checked on disk), download
//! their folder as a tar (entries checked); then, as a viewer, find no
//! change control and have a change request refused with 403.
//!
//! Screenshots of the main pages are saved into a temp folder whose path
//! is printed (run with `--nocapture` to see it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::common::browser;
use crate::common::daemon::{self, InProcessAgent};
use crate::common::restic as restic_repo;
use crate::common::server::{spawn_app, TestApp};
use browser::{
    fill, screenshot, wait_css, wait_download, wait_js, wait_path, wait_path_prefix, Browser,
    DEADLINE,
};
use fantoccini::{Client, Locator};
use restic_manager::auth::Role;
use serde_json::{json, Value};

/// Size of the sparse file in the backed-up folder: restic reads and
/// hashes every byte, so the backup runs for seconds and reports progress
/// several times, while the disk holds almost nothing.
const SPARSE_BYTES: u64 = 1024 * 1024 * 1024;

/// A folder for screenshots that outlives the test.
fn screenshot_dir() -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("restic-manager-ui-screenshots-")
        .tempdir()
        .unwrap()
        .keep();
    println!("screenshots: {}", dir.display());
    eprintln!("screenshots: {}", dir.display());
    dir
}

/// Logs in through the login form and waits to land on `expect_path`.
pub(crate) async fn log_in(c: &Client, app: &TestApp, next: &str, user: &str, password: &str) {
    c.goto(&app.url(next)).await.unwrap();
    wait_path(c, "/login").await;
    fill(c, "#username", user).await;
    fill(c, "#password", password).await;
    c.find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(c, next.split('?').next().unwrap()).await;
}

/// The text of the element matching `css`.
pub(crate) async fn text_of(c: &Client, css: &str) -> String {
    wait_css(c, css).await.text().await.unwrap()
}

pub(crate) async fn click(c: &Client, css: &str) {
    wait_css(c, css).await.click().await.unwrap();
}

/// Waits until the job page shows a terminal status; returns it.
async fn terminal_status(c: &Client) -> String {
    wait_js(
        c,
        "a terminal job status",
        "const s = document.getElementById('job-page').getAttribute('data-status');
         return ['succeeded', 'failed', 'cancelled'].includes(s) ? s : null;",
    )
    .await
    .as_str()
    .unwrap()
    .to_owned()
}

/// A fetch from the page with the session's CSRF token: `[status, error code]`.
async fn fetch_from_page(c: &Client, method: &str, path: &str, body: Value) -> Value {
    c.execute_async(
        "const [method, path, body, done] = arguments;
         const csrf = document.querySelector('meta[name=\"csrf-token\"]').content;
         fetch(path, {method, credentials: 'same-origin',
                      headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                      body: body === null ? undefined : JSON.stringify(body)})
           .then(r => r.text().then(t => {
               let code = null;
               try { code = JSON.parse(t).error.code; } catch (e) {}
               done([r.status, code]);
           }));",
        vec![json!(method), json!(path), body],
    )
    .await
    .unwrap()
}

/// Reloads the page until `css` matches, for server-rendered facts that
/// arrive asynchronously (the agent's snapshot report).
async fn reload_until(c: &Client, what: &str, css: &str) {
    let started = Instant::now();
    loop {
        if !c.find_all(Locator::Css(css)).await.unwrap().is_empty() {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        c.refresh().await.unwrap();
    }
}

/// Every element that could change something, on the current page.
async fn change_controls(c: &Client) -> Vec<String> {
    let mut found = Vec::new();
    for el in c.find_all(Locator::Css("[data-change]")).await.unwrap() {
        found.push(el.html(false).await.unwrap());
    }
    for el in c.find_all(Locator::Css("button")).await.unwrap() {
        let label = el.text().await.unwrap();
        if !["Log out", "Filter"].contains(&label.trim()) {
            found.push(format!("button {label:?}"));
        }
    }
    found
}

/// Creates a user through the API (as an admin's automation would).
async fn add_user(app: &TestApp, name: &str, role: Role) -> String {
    let password = format!("{name}-password-1234");
    let resp = crate::common::server::client()
        .post(app.api("/users"))
        .bearer_auth(&app.admin_token)
        .json(&json!({"username": name, "password": password, "role": role.as_str()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    password
}

/// The files of the `letters` subfolder, restored and downloaded.
const LETTERS: [(&str, &str); 3] = [
    ("letters/to-alice.txt", "Dear Alice,\n"),
    ("letters/to-bob.txt", "Dear Bob, the numbers are in.\n"),
    ("letters/to-carol.txt", "Dear Carol,\n"),
];

/// A folder to back up: small files (one excluded), a `letters`
/// subfolder, and a large sparse one.
fn source_folder(repo: &restic_repo::TempRepo) -> PathBuf {
    let dir = repo.source(
        "documents",
        &[
            ("report.txt", "quarterly numbers\n"),
            ("scratch.tmp", "excluded\n"),
            LETTERS[0],
            LETTERS[1],
            LETTERS[2],
        ],
    );
    let sparse = std::fs::File::create(dir.join("disk.img")).unwrap();
    sparse.set_len(SPARSE_BYTES).unwrap();
    dir
}

/// The whole journey; one test so that the expensive parts (browser, agent, restic) start once.
#[actix_web::test]
async fn operator_journey_then_viewer_is_read_only() {
    restic_repo::require_restic();
    let app = spawn_app().await;
    let shots = screenshot_dir();
    let repo = restic_repo::TempRepo::new();
    let source = source_folder(&repo);
    let browser = Browser::start().await;
    let c = &browser.client;

    // --- Login: a wrong password says so; the right one returns to `next`.
    c.goto(&app.url("/hosts")).await.unwrap();
    wait_path(c, "/login").await;
    let url = c.current_url().await.unwrap();
    assert_eq!(url.query(), Some("next=/hosts"));
    fill(c, "#username", "admin").await;
    fill(c, "#password", "not-the-password").await;
    click(c, "#login-submit").await;
    wait_js(
        c,
        "the wrong-password message",
        "return document.getElementById('login-error').textContent || null;",
    )
    .await;
    assert_eq!(
        text_of(c, "#login-error").await,
        "Wrong user name or password."
    );
    screenshot(c, &shots, "01-login-wrong-password").await;
    fill(c, "#password", &app.admin_password).await;
    click(c, "#login-submit").await;
    wait_path(c, "/hosts").await;

    // --- Enrolment: create a token; the page shows the exact command.
    c.goto(&app.url("/enrollment")).await.unwrap();
    click(c, "#create-token").await;
    let command = wait_js(
        c,
        "the enrolment command",
        "return document.getElementById('enroll-command').textContent || null;",
    )
    .await
    .as_str()
    .unwrap()
    .to_owned();
    let prefix = format!(
        "restic-manager-agent enroll --server {} --token ",
        app.base_url
    );
    assert!(command.starts_with(&prefix), "{command}");
    let token = command[prefix.len()..].trim().to_owned();
    assert!(token.len() >= 32, "{token}");
    wait_css(c, "#token-list tbody tr").await;
    screenshot(c, &shots, "02-enrollment").await;

    // --- Enrol the real agent with that token; it shows up offline, then
    // comes online on the open dashboard without a reload.
    let agent_dir = tempfile::tempdir().unwrap();
    let agent_config = daemon::enroll_with(&app.base_url, &token, agent_dir.path()).await;
    let host = agent_config.host_id.clone();
    c.goto(&app.url("/")).await.unwrap();
    let presence = format!("[data-presence=\"{host}\"]");
    assert_eq!(text_of(c, &presence).await, "offline");
    wait_css(c, "body[data-live=\"open\"]").await;
    let agent = InProcessAgent::start(agent_config);
    wait_js(
        c,
        "the host to come online on the dashboard",
        &format!(
            "const b = document.querySelector('[data-presence=\"{host}\"]');
             return b && b.textContent === 'online';"
        ),
    )
    .await;
    screenshot(c, &shots, "03-dashboard-online").await;

    // --- Host page: repository, init, source group, schedule.
    let host_path = format!("/hosts/{host}");
    c.goto(&app.url(&host_path)).await.unwrap();
    assert_eq!(text_of(c, "#repo-none").await, "No repository configured.");
    let before = c
        .execute(
            "const b = document.getElementById('run-init');
             return {disabled: b.disabled, title: b.title,
                     next: document.querySelector('#first-steps li.next').dataset.step};",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        before["disabled"], true,
        "init before a repository: {before}"
    );
    assert!(
        before["title"]
            .as_str()
            .unwrap()
            .contains("Configure the repository"),
        "{before}"
    );
    assert_eq!(before["next"], "1", "{before}");
    screenshot(c, &shots, "03a-new-host").await;
    fill(c, "#repo-url-input", &repo.repo.to_string_lossy()).await;
    fill(c, "#repo-password", &repo.password).await;
    click(c, "#repository-form button[type=submit]").await;
    wait_css(c, "#repo-password-set [data-badge=\"set\"]").await;
    assert_eq!(text_of(c, "#repo-credential-set").await, "not set");
    let html = c.source().await.unwrap();
    assert!(
        !html.contains(&repo.password),
        "the page shows the repository password"
    );

    assert!(
        !c.execute(
            "return document.getElementById('run-init').disabled;",
            vec![]
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap(),
        "init stays disabled with a repository"
    );
    click(c, "#run-init").await;
    wait_path_prefix(c, "/jobs/").await;
    let status = terminal_status(c).await;
    assert_eq!(
        status,
        "succeeded",
        "init: {}",
        text_of(c, "#job-page").await
    );

    c.goto(&app.url(&host_path)).await.unwrap();
    fill(c, "#g-new-name", "documents").await;
    fill(c, "#g-new-includes", &source.to_string_lossy()).await;
    fill(c, "#g-new-excludes", "*.tmp").await;
    c.find(Locator::Css("#g-new-form input[name=keep_last]"))
        .await
        .unwrap()
        .send_keys("7")
        .await
        .unwrap();
    click(c, "#g-new-form button[type=submit]").await;
    wait_css(c, "tr[data-group=\"documents\"]").await;

    click(c, "#add-schedule > summary").await;
    fill(c, "#s-new-cron", "0 3 * * *").await;
    click(c, "#s-new-form input[name=source_groups][value=documents]").await;
    click(c, "#s-new-form button[type=submit]").await;
    wait_css(c, "#schedule-list tbody tr").await;
    let next_runs = c
        .find_all(Locator::Css("#schedule-list td.next-runs time"))
        .await
        .unwrap();
    assert_eq!(next_runs.len(), 5, "five next run times");
    assert!(next_runs[0].text().await.unwrap().ends_with("03:00 UTC"));

    click(c, "#rename-host > summary").await;
    fill(c, "#display-name", "web-01 <primary>").await;
    click(c, "#host-name-form button[type=submit]").await;
    wait_js(
        c,
        "the new display name",
        "return document.querySelector('main h1').textContent === 'web-01 <primary>';",
    )
    .await;

    // --- Run a backup and watch it live.
    click(c, "#run-backup-documents").await;
    let job_path = wait_path_prefix(c, "/jobs/").await;
    let job_id = job_path.trim_start_matches("/jobs/").to_owned();
    let rendered = c
        .find(Locator::Css("#job-page"))
        .await
        .unwrap()
        .attr("data-rendered-status")
        .await
        .unwrap()
        .unwrap();
    assert!(
        rendered == "queued" || rendered == "running",
        "the job page was rendered after the backup ended ({rendered}); make the source larger"
    );
    c.execute("window.__rmSamePage = 'yes'; return true;", vec![])
        .await
        .unwrap();
    wait_js(
        c,
        "a live progress update",
        "return Number(document.getElementById('job-progress').getAttribute('data-updates')) >= 1;",
    )
    .await;
    screenshot(c, &shots, "04-job-running").await;
    let status = terminal_status(c).await;
    assert_eq!(
        status,
        "succeeded",
        "backup: {}",
        text_of(c, "#job-page").await
    );
    let live = c
        .execute(
            "return {
                same: window.__rmSamePage === 'yes',
                updates: Number(document.getElementById('job-progress').getAttribute('data-updates')),
                value: document.getElementById('job-progress').value,
                liveLines: document.querySelectorAll('#job-log .line[data-live]').length,
                summary: !document.getElementById('job-summary').hidden,
                snapshot: (document.querySelector('#job-summary-list [data-key=snapshot_id]') || {}).textContent || null,
                badge: document.querySelector('#job-status [data-badge]').textContent,
                cancel: document.getElementById('cancel-job') !== null,
             };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(live["same"], true, "the page reloaded: {live}");
    assert!(
        live["updates"].as_u64().unwrap() >= 2,
        "progress updates: {live}"
    );
    assert_eq!(live["value"], 100.0, "{live}");
    assert!(
        live["liveLines"].as_u64().unwrap() >= 1,
        "live log lines: {live}"
    );
    assert_eq!(live["summary"], true, "{live}");
    assert!(live["snapshot"].is_string(), "{live}");
    assert_eq!(live["badge"], "succeeded", "{live}");
    assert_eq!(live["cancel"], false, "{live}");
    let finished = finished_job_view(c).await;
    check_log_rules(c).await;
    screenshot(c, &shots, "05-job-finished").await;
    // Reloaded, the finished page reads the same as it did live.
    c.refresh().await.unwrap();
    wait_css(c, "#job-page[data-rendered-status=\"succeeded\"]").await;
    let reloaded = finished_job_view(c).await;
    assert_eq!(
        finished["progress"], reloaded["progress"],
        "live and reloaded progress differ"
    );
    assert_eq!(
        finished["log"], reloaded["log"],
        "live and reloaded log differ"
    );
    c.execute(
        "document.getElementById('job-log-section').scrollIntoView(); return true;",
        vec![],
    )
    .await
    .unwrap();
    screenshot(c, &shots, "05a-job-log").await;
    click(c, "label[for=log-raw-toggle]").await;
    let raw = c
        .execute(
            "return document.getElementById('job-log').innerText;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        raw.as_str().unwrap().contains("\"message_type\""),
        "raw lines one click away"
    );
    screenshot(c, &shots, "05b-job-log-raw").await;

    // --- The snapshot is listed on the host page.
    c.goto(&app.url(&host_path)).await.unwrap();
    reload_until(c, "the snapshot report", "#snapshot-list tr[data-snapshot]").await;
    let size = text_of(c, "#snapshot-list tbody tr td.size").await;
    let files = text_of(c, "#snapshot-list tbody tr td.files").await;
    assert_eq!(
        size,
        finished["summary_bytes"].as_str().unwrap(),
        "snapshot size (restic 0.14)"
    );
    assert_eq!(
        files,
        finished["summary_files"].as_str().unwrap(),
        "snapshot files (restic 0.14)"
    );
    let tags = text_of(c, "#snapshot-list tbody tr td.tags").await;
    assert!(tags.contains("documents"), "{tags}");
    let paths = text_of(c, "#snapshot-list tbody tr").await;
    assert!(paths.contains(&*source.to_string_lossy()), "{paths}");
    screenshot(c, &shots, "06-host").await;

    // --- Browse the snapshot, restore two files, download their folder.
    let snapshot_path = browse_restore_download(c, &browser, &app, &shots, &source).await;

    // --- Today's calendar cell is green.
    c.goto(&app.url("/")).await.unwrap();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let cell = wait_css(
        c,
        &format!("rect[data-host=\"{host}\"][data-day=\"{today}\"]"),
    )
    .await;
    assert_eq!(
        cell.attr("data-outcome").await.unwrap().as_deref(),
        Some("succeeded")
    );
    assert_eq!(cell.attr("fill").await.unwrap().as_deref(), Some("#1f9d55"));
    let row = text_of(c, &format!("#backup-status tr[data-host-id=\"{host}\"]")).await;
    assert!(
        row.contains("documents") && row.contains("succeeded"),
        "{row}"
    );
    screenshot(c, &shots, "07-dashboard").await;
    c.goto(&app.url("/audit")).await.unwrap();
    wait_css(c, "#audit-list tr[data-action=\"job.create\"]").await;
    screenshot(c, &shots, "08-audit").await;
    c.goto(&app.url("/users")).await.unwrap();
    wait_css(c, "#user-list").await;
    screenshot(c, &shots, "09-users").await;
    narrow_pages(
        c,
        &app,
        &shots,
        &[&host_path, &job_path, "/", "/audit", "/hosts"],
    )
    .await;

    // --- Log out; a locked-out account is told so.
    click(c, "#logout").await;
    wait_path(c, "/login").await;
    let locky_pw = add_user(&app, "locky", Role::Viewer).await;
    assert_ne!(locky_pw, "wrong");
    for _ in 0..restic_manager::http::auth::ACCOUNT_MAX_FAILURES {
        fill(c, "#username", "locky").await;
        fill(c, "#password", "wrong-password").await;
        click(c, "#login-submit").await;
        wait_js(
            c,
            "a failed login",
            "const e = document.getElementById('login-error');
             const b = document.getElementById('login-submit');
             return e.textContent !== '' && !b.disabled;",
        )
        .await;
    }
    fill(c, "#password", "wrong-password").await;
    click(c, "#login-submit").await;
    let locked = wait_js(
        c,
        "the locked-out message",
        "const t = document.getElementById('login-error').textContent;
         return t.startsWith('Locked out') ? t : null;",
    )
    .await;
    assert!(
        locked.as_str().unwrap().contains("too many failed logins"),
        "{locked}"
    );

    // --- A viewer sees everything and can change nothing.
    let viewer_pw = add_user(&app, "vera", Role::Viewer).await;
    log_in(c, &app, "/", "vera", &viewer_pw).await;
    for path in [
        "/".to_owned(),
        "/hosts".to_owned(),
        host_path.clone(),
        job_path.clone(),
        snapshot_path.clone(),
    ] {
        c.goto(&app.url(&path)).await.unwrap();
        wait_css(c, "main h1").await;
        let controls = change_controls(c).await;
        assert!(
            controls.is_empty(),
            "{path}: change controls for a viewer: {controls:?}"
        );
    }
    c.goto(&app.url(&host_path)).await.unwrap();
    wait_css(c, "#snapshot-list").await;
    screenshot(c, &shots, "10-host-as-viewer").await;
    for (method, path, body) in [
        (
            "POST",
            format!("/api/v1/hosts/{host}/jobs"),
            json!({"kind": "backup", "source_group": "documents"}),
        ),
        (
            "PUT",
            format!("/api/v1/hosts/{host}/repository"),
            json!({"url": "/tmp/elsewhere"}),
        ),
        ("POST", format!("/api/v1/jobs/{job_id}/cancel"), Value::Null),
        (
            "POST",
            "/api/v1/enrollment-tokens".to_owned(),
            json!({"ttl_seconds": 3600}),
        ),
    ] {
        let answer = fetch_from_page(c, method, &path, body).await;
        assert_eq!(answer[0], 403, "{method} {path}: {answer}");
    }
    for path in ["/users", "/enrollment"] {
        c.goto(&app.url(path)).await.unwrap();
        let message = text_of(c, "#error-message").await;
        assert!(message.contains("admin role"), "{path}: {message}");
    }
    // The audit log is for admins only (issue 15 B.3).
    c.goto(&app.url("/audit")).await.unwrap();
    let message = text_of(c, "#error-message").await;
    assert!(message.contains("admin role"), "/audit: {message}");

    browser.close().await;
    agent.stop().await;
    app.stop().await;
    assert_screenshots(&shots);
}

/// From the host page: open the snapshot, wait for its catalog, open the
/// `letters` folder, select two files and restore them into a new folder
/// (checked byte for byte on disk, the third file not restored), then
/// download the folder (the tar's entries checked). Returns the snapshot
/// page's path.
async fn browse_restore_download(
    c: &Client,
    browser: &Browser,
    app: &TestApp,
    shots: &Path,
    source: &Path,
) -> String {
    click(c, "#snapshot-list a.snapshot-link").await;
    let snapshot_path = wait_path_prefix(c, "/hosts/").await;
    assert!(snapshot_path.contains("/snapshots/"), "{snapshot_path}");
    // The page follows the catalog job and reloads when it is done.
    wait_css(c, "#catalog-state[data-state=\"complete\"]").await;
    let folder = source.to_string_lossy().into_owned();
    c.goto(&app.url(&format!(
        "{snapshot_path}?path={}",
        restic_manager::http::ui::encode_query_value(&folder)
    )))
    .await
    .unwrap();
    let letters = format!("{folder}/letters");
    click(c, &format!("tr[data-entry=\"{letters}\"] a.dir")).await;
    wait_css(c, &format!("#breadcrumb strong[data-crumb=\"{letters}\"]")).await;
    let picked = [LETTERS[0], LETTERS[1]];
    for (name, _) in picked {
        click(c, &format!("input.select-entry[value=\"{folder}/{name}\"]")).await;
    }
    wait_css(c, "#snapshot-page[data-selected=\"2\"]").await;
    assert_eq!(text_of(c, "#selection-count").await, "2");
    screenshot(c, shots, "06a-snapshot-browser").await;

    // Restore the two files into a new folder on the same host.
    let target = tempfile::tempdir().unwrap();
    let target_dir = target.path().join("restored");
    click(c, "#restore-open").await;
    wait_js(
        c,
        "the restore dialog",
        "return document.getElementById('restore-dialog').open;",
    )
    .await;
    fill(c, "#restore-target", &target_dir.to_string_lossy()).await;
    click(c, "#restore-verify").await;
    screenshot(c, shots, "06b-restore-dialog").await;
    click(c, "#restore-submit").await;
    wait_path_prefix(c, "/jobs/").await;
    assert_eq!(text_of(c, "#job-kind").await, "restore");
    let status = terminal_status(c).await;
    assert_eq!(
        status,
        "succeeded",
        "restore: {}",
        text_of(c, "#job-page").await
    );
    let paths = text_of(c, "#job-restore-paths").await;
    assert!(
        paths.contains("to-alice.txt") && paths.contains("to-bob.txt"),
        "{paths}"
    );
    screenshot(c, shots, "06c-restore-finished").await;
    // restic restores the paths under the target with their full path.
    let restored = target_dir.join(source.strip_prefix("/").unwrap());
    for (name, content) in picked {
        assert_eq!(
            std::fs::read_to_string(restored.join(name)).unwrap(),
            content,
            "{name}"
        );
    }
    assert!(
        !restored.join(LETTERS[2].0).exists(),
        "an unselected file was restored"
    );

    // Download the folder as a tar.
    c.back().await.unwrap();
    wait_css(c, &format!("#breadcrumb strong[data-crumb=\"{letters}\"]")).await;
    click(c, "#download-folder").await;
    let tar = wait_download(browser.downloads.path(), "letters.tar").await;
    let saved = target.path().join("letters.tar");
    std::fs::write(&saved, &tar).unwrap();
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&saved)
        .output()
        .unwrap();
    assert!(listing.status.success(), "tar -tf failed");
    let names = String::from_utf8(listing.stdout).unwrap();
    for (name, _) in LETTERS {
        assert!(
            names
                .lines()
                .any(|l| l.trim_end_matches('/').ends_with(name)),
            "{name} not in the tar: {names}"
        );
    }
    snapshot_path
}

/// The finished job page: the progress text and the summary's figures
/// (which must agree), and the log as shown (kind and text of each
/// visible line). Checks that no raw JSON shows.
async fn finished_job_view(c: &Client) -> Value {
    let view = c
        .execute(
            "const text = id => document.getElementById(id).textContent;
             const dd = key => document.querySelector('#job-summary-list [data-key=' + key + ']').textContent;
             const log = document.getElementById('job-log');
             const shown = [...log.querySelectorAll('.line')].filter(l => l.offsetParent !== null);
             return {
                progress: [text('progress-percent'), text('progress-bytes'), text('progress-files'),
                           text('progress-throughput'), text('progress-eta')],
                summary_bytes: dd('total_bytes_processed'),
                summary_files: dd('total_files_processed'),
                section: !document.getElementById('job-progress-section').hidden,
                log: shown.map(l => l.dataset.kind + ' ' + ((l.querySelector('.human') || l).textContent)),
                text: log.innerText,
                statuses: shown.filter(l => l.dataset.kind === 'status').length,
             };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        view["section"], true,
        "the progress section is shown: {view}"
    );
    let bytes = view["summary_bytes"].as_str().unwrap();
    let files = view["summary_files"].as_str().unwrap();
    let progress: Vec<&str> = view["progress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(progress[0], "100.0%", "{view}");
    assert_eq!(progress[1], format!("{bytes} of {bytes}"), "{view}");
    assert_eq!(progress[2], format!("{files} of {files} files"), "{view}");
    assert_ne!(progress[3], "0 B/s", "{view}");
    assert_eq!(progress[4], "—", "{view}");
    let text = view["text"].as_str().unwrap();
    assert!(
        !text.contains("message_type"),
        "raw JSON in the log: {text}"
    );
    assert!(
        text.contains("backup done: "),
        "no summary sentence: {text}"
    );
    assert!(
        view["statuses"].as_u64().unwrap() <= 1,
        "progress lines not folded: {view}"
    );
    view
}

/// `app.js`'s log rules give what `log_lines.rs` gives on the shared cases.
async fn check_log_rules(c: &Client) {
    let cases: Value =
        serde_json::from_str(include_str!("../../src/http/ui/log_cases.json")).unwrap();
    let got = c
        .execute(
            "return arguments[0].map(k => window.RM.logLine(k.stream, k.payload));",
            vec![cases.clone()],
        )
        .await
        .unwrap();
    for (case, got) in cases
        .as_array()
        .unwrap()
        .iter()
        .zip(got.as_array().unwrap())
    {
        assert_eq!(got["kind"], case["kind"], "{case}");
        assert_eq!(got["text"], case["text"], "{case}");
    }
}

/// At 400 px wide, each page scrolls only down (wide tables scroll in
/// their box) and the navigation is folded behind "Menu".
pub(crate) async fn narrow_pages(c: &Client, app: &TestApp, shots: &Path, paths: &[&str]) {
    c.set_window_size(400, 900).await.unwrap();
    for (i, path) in paths.iter().enumerate() {
        c.goto(&app.url(path)).await.unwrap();
        wait_css(c, "main h1").await;
        let sizes = c
            .execute(
                "const d = document.documentElement;
                 return {scroll: d.scrollWidth, client: d.clientWidth,
                         nav: document.querySelector('.topbar nav').offsetParent !== null};",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            sizes["scroll"].as_u64().unwrap() <= sizes["client"].as_u64().unwrap(),
            "{path} scrolls sideways at 400 px: {sizes}"
        );
        assert_eq!(
            sizes["nav"], false,
            "{path}: navigation not folded: {sizes}"
        );
        screenshot(c, shots, &format!("11-narrow-{i}")).await;
    }
    click(c, "label.nav-fold-label").await;
    wait_js(
        c,
        "the unfolded navigation",
        "return document.querySelector('.topbar nav').offsetParent !== null;",
    )
    .await;
    screenshot(c, shots, "12-narrow-menu").await;
    c.set_window_size(1400, 1000).await.unwrap();
}

/// Every screenshot is a PNG file.
fn assert_screenshots(dir: &Path) {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        count += 1;
    }
    assert!(count >= 10, "{count} screenshots");
}
