//! The web UI over plain HTTP against a real server: redirects to the
//! login page, the security and cache headers, role-dependent pages,
//! escaping of agent-reported names, and the job event stream (replay,
//! live, de-duplication, resume from `Last-Event-ID`, end after the
//! terminal status) fed by a scripted agent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use crate::common::agent::{enroll, finished_envelope, log_line, TestAgent};
use crate::common::api::{create_host, login, Browser};
use crate::common::fleet::add_user;
use crate::common::server::{spawn_app, TestApp};
use restic_manager::auth::Role;
use restic_manager::protocol;
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(30);

/// A client that does not follow redirects (the tests look at them).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn page(app: &TestApp, session: &Browser, path: &str) -> reqwest::Response {
    client()
        .get(app.url(path))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap()
}

/// Every page sends a visitor without a session to the login page, carrying the path back.
#[actix_web::test]
async fn pages_redirect_to_login_with_next() {
    let app = spawn_app().await;
    for (path, location) in [
        ("/", "/login"),
        (
            "/hosts?status=offline",
            "/login?next=/hosts%3Fstatus%3Doffline",
        ),
        ("/hosts/abc", "/login?next=/hosts/abc"),
        ("/jobs/abc", "/login?next=/jobs/abc"),
        ("/enrollment", "/login?next=/enrollment"),
        ("/users", "/login?next=/users"),
        ("/audit", "/login?next=/audit"),
    ] {
        let resp = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(resp.headers()["location"], location, "{path}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
    }
    // An expired or forged cookie is the same as none.
    let resp = client()
        .get(app.url("/hosts"))
        .header("cookie", "rm_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["location"], "/login?next=/hosts");

    let login_page = client()
        .get(app.url("/login?next=%2F%2Fevil.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(login_page.status(), 200);
    let headers = login_page.headers().clone();
    let html = login_page.text().await.unwrap();
    assert!(html.contains(r#"data-next="/""#), "unsafe next is dropped");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers.contains_key("referrer-policy"));
    app.stop().await;
}

/// Logged in, pages render with the session's CSRF token in a meta tag; the login page forwards to next.
#[actix_web::test]
async fn logged_in_pages_and_roles() {
    let app = spawn_app().await;
    let admin = login(&app, "admin", &app.admin_password).await;
    for path in ["/", "/hosts", "/enrollment", "/users", "/audit"] {
        let resp = page(&app, &admin, path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let html = resp.text().await.unwrap();
        assert!(
            html.contains(&format!(
                r#"<meta name="csrf-token" content="{}">"#,
                admin.csrf
            )),
            "{path}"
        );
        assert!(!html.contains("<script>"), "{path}: inline script");
    }
    let resp = page(&app, &admin, "/login?next=/audit").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/audit");
    let resp = page(&app, &admin, "/hosts/no-such-host").await;
    assert_eq!(resp.status(), 404);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("host no-such-host not found"));

    // Viewers and operators: no user or enrolment management.
    let viewer_pw = add_user(&app, "vera", Role::Viewer).await;
    let operator_pw = add_user(&app, "otto", Role::Operator).await;
    let viewer = login(&app, "vera", &viewer_pw).await;
    let operator = login(&app, "otto", &operator_pw).await;
    for session in [&viewer, &operator] {
        for path in ["/users", "/enrollment"] {
            let resp = page(&app, session, path).await;
            assert_eq!(resp.status(), 403, "{path}");
            // A full page: the navigation and logout stay, with the reason.
            let html = resp.text().await.unwrap();
            assert!(html.contains(r#"href="/hosts""#), "{path}: no navigation");
            assert!(html.contains(r#"id="logout""#), "{path}: no logout");
            assert!(html.contains("admin role"), "{path}: no reason");
        }
        // The audit log is for admins only (issue 15 B.3).
        assert_eq!(page(&app, session, "/audit").await.status(), 403);
        let html = page(&app, session, "/").await.text().await.unwrap();
        assert!(!html.contains(r#"href="/users""#));
        assert!(!html.contains(r#"href="/audit""#));
    }
    let html = page(&app, &admin, "/audit?action=login")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"<tr data-action="login">"#),
        "the admin sees the logins"
    );

    // The script and style sheet: hashed URLs are cached for good.
    let html = page(&app, &admin, "/").await.text().await.unwrap();
    let js = html
        .split(r#"<script src=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let resp = client().get(app.url(&js)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    app.stop().await;
}

/// A host name reported by an agent is escaped on every page that shows it; viewers get no change controls.
#[actix_web::test]
async fn agent_reported_names_are_escaped() {
    let app = spawn_app().await;
    let evil = r#"<script>alert("x")</script>"#;
    let enrolled = enroll(&app, evil).await;
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    agent.hello(evil).await;
    let admin = login(&app, "admin", &app.admin_password).await;
    for path in ["/", "/hosts", &format!("/hosts/{}", enrolled.host_id)] {
        let html = page(&app, &admin, path).await.text().await.unwrap();
        assert!(!html.contains(evil), "{path}: raw host name");
        assert!(
            html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;")
                || html.contains("&lt;script&gt;alert(\"x\")&lt;/script&gt;"),
            "{path}: escaped host name missing"
        );
    }
    let host_page = format!("/hosts/{}", enrolled.host_id);
    let html = page(&app, &admin, &host_page).await.text().await.unwrap();
    assert!(
        html.contains("data-change"),
        "the admin gets change controls"
    );
    // A new host: the first steps are listed, and what needs a repository
    // is disabled, saying why, until one is configured.
    assert!(html.contains(r#"id="first-steps""#), "no first steps");
    for id in [
        "run-init",
        "run-prune",
        "run-check",
        "run-unlock",
        "run-drill",
    ] {
        let button = html
            .split(&format!(r#"id="{id}""#))
            .nth(1)
            .and_then(|rest| rest.split('>').next())
            .unwrap_or_else(|| panic!("no {id}"));
        assert!(button.contains(" disabled"), "{id} enabled: {button}");
        assert!(
            button.contains("title=\"Configure the repository first"),
            "{id}: {button}"
        );
    }
    let viewer_pw = add_user(&app, "vic", Role::Viewer).await;
    let viewer = login(&app, "vic", &viewer_pw).await;
    for path in ["/", "/hosts", host_page.as_str()] {
        let html = page(&app, &viewer, path).await.text().await.unwrap();
        assert!(
            !html.contains("data-change"),
            "{path}: change control for a viewer"
        );
    }
    agent.close().await;
    app.stop().await;
}

/// One parsed SSE frame.
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    event: String,
    id: Option<String>,
    data: Value,
}

/// Reads an event stream until it ends or `stop` says so.
struct SseReader {
    resp: reqwest::Response,
    buffer: String,
    ended: bool,
}

impl SseReader {
    /// Opens `url_path` (a path of the server, e.g. `/api/v1/jobs/x/events`).
    async fn open(
        app: &TestApp,
        url_path: &str,
        last_event_id: Option<&str>,
        auth: Auth<'_>,
    ) -> Self {
        let mut req = client().get(app.url(url_path));
        req = match auth {
            Auth::Token => req.bearer_auth(&app.admin_token),
            Auth::Cookie(session) => req.header("cookie", &session.cookie),
        };
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url_path}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        SseReader {
            resp,
            buffer: String::new(),
            ended: false,
        }
    }

    /// The next frame with data (comments and `retry:` are skipped), or
    /// `None` when the stream ended.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let mut frame = Frame {
                    event: String::new(),
                    id: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        frame.event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        frame.id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if frame.event.is_empty() {
                    continue;
                }
                frame.data = serde_json::from_str(&data).unwrap();
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            let chunk = tokio::time::timeout(DEADLINE, self.resp.chunk())
                .await
                .expect("an event in time")
                .unwrap();
            match chunk {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => self.ended = true,
            }
        }
    }

    /// Frames until one matches `stop` (included).
    async fn until(&mut self, stop: impl Fn(&Frame) -> bool) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next().await {
            let done = stop(&frame);
            frames.push(frame);
            if done {
                return frames;
            }
        }
        panic!("the stream ended before the expected frame: {frames:?}");
    }
}

enum Auth<'a> {
    Token,
    Cookie(&'a Browser),
}

fn log_seqs(frames: &[Frame]) -> Vec<i64> {
    frames
        .iter()
        .filter(|f| f.event == "log")
        .map(|f| f.data["seq"].as_i64().unwrap())
        .collect()
}

/// The job stream replays stored lines after the resume point, then goes live without duplicates, and ends after the terminal status.
#[actix_web::test]
async fn job_event_stream_replays_then_follows_then_ends() {
    let app = spawn_app().await;
    let enrolled = enroll(&app, "sse-host").await;
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    agent.hello("sse-host").await;
    let created: Value = client()
        .post(app.api(&format!("/hosts/{}/jobs", enrolled.host_id)))
        .bearer_auth(&app.admin_token)
        .json(&json!({"kind": "check"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = created["id"].as_str().unwrap().to_owned();
    let run = agent.expect_command_run().await;
    assert_eq!(run.job_id, job_id);
    agent.start_job(&run).await;
    for seq in 1..=3 {
        agent.send(log_line(&job_id, seq)).await;
    }

    // A viewer's browser session may read the stream; it resumes after line 1.
    let viewer_pw = add_user(&app, "val", Role::Viewer).await;
    let viewer = login(&app, "val", &viewer_pw).await;
    let path = format!("/api/v1/jobs/{job_id}/events?after_seq=1");
    let mut stream = SseReader::open(&app, &path, None, Auth::Cookie(&viewer)).await;
    let first = stream
        .until(|f| f.event == "log" && f.data["seq"] == 3)
        .await;
    assert_eq!(log_seqs(&first), [2, 3], "{first:?}");
    let line2 = first.iter().find(|f| f.event == "log").unwrap();
    assert_eq!(
        line2.id.as_deref(),
        Some("2"),
        "log frames carry their seq as id"
    );
    assert_eq!(line2.data["payload"], format!("line 2 of {job_id}"));
    assert_eq!(line2.data["stream"], "stdout");
    // After the stored lines, the job's status: from here the stream is
    // live (a job that ended before this point is told with its status).
    let live = stream.until(|f| f.event == "status").await;
    assert_eq!(live.last().unwrap().data["status"], "running", "{live:?}");

    // Live: progress, two new lines, a replayed old line (skipped), the end.
    agent
        .send(protocol::JobProgress {
            job_id: job_id.clone(),
            percent_done: 0.5,
            files_done: 1,
            total_files: 2,
            bytes_done: 10,
            total_bytes: 20,
            eta_seconds: Some(3),
            throughput_bps: 10,
            step: None,
            dumped_bytes: None,
        })
        .await;
    agent.send(log_line(&job_id, 4)).await;
    agent.send(log_line(&job_id, 2)).await;
    agent.send(log_line(&job_id, 5)).await;
    let finished = finished_envelope(&job_id, protocol::FinishStatus::Succeeded);
    agent.send_envelope(&finished).await;
    agent.expect_ack(&finished.id).await;

    let rest = stream
        .until(|f| f.event == "status" && f.data["status"] == "succeeded")
        .await;
    assert_eq!(log_seqs(&rest), [4, 5], "{rest:?}");
    let progress = rest.iter().find(|f| f.event == "progress").unwrap();
    assert_eq!(progress.data["percent_done"], 0.5);
    assert_eq!(progress.data["eta_seconds"], 3);
    let status = rest.last().unwrap();
    assert_eq!(status.data["stats"]["files_new"], 3);
    assert_eq!(status.data["exit_code"], 0);
    assert!(status.data["finished_at"].is_string());
    assert_eq!(
        stream.next().await,
        None,
        "the stream ends after the terminal status"
    );

    // A reconnect with Last-Event-ID resumes after that line, whatever after_seq says.
    let mut again = SseReader::open(
        &app,
        &format!("/api/v1/jobs/{job_id}/events?after_seq=0"),
        Some("4"),
        Auth::Token,
    )
    .await;
    let frames = again.until(|f| f.event == "status").await;
    assert_eq!(log_seqs(&frames), [5]);
    assert_eq!(frames.last().unwrap().data["status"], "succeeded");
    assert_eq!(again.next().await, None);

    // Unknown jobs are 404; no credentials is 401.
    let resp = client()
        .get(app.api("/jobs/nope/events"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = client()
        .get(app.api(&format!("/jobs/{job_id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    agent.close().await;
    app.stop().await;
}

/// The UI's presence stream reports a host coming online and going offline.
#[actix_web::test]
async fn presence_stream_reports_hosts() {
    let app = spawn_app().await;
    let enrolled = enroll(&app, "presence-host").await;
    let mut stream = SseReader::open(&app, "/ui/events", None, Auth::Token).await;
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    agent.hello("presence-host").await;
    let frames = stream
        .until(|f| f.event == "host" && f.data["host_id"] == enrolled.host_id.as_str())
        .await;
    assert_eq!(frames.last().unwrap().data["status"], "online");
    agent.close().await;
    let frames = stream
        .until(|f| f.event == "host" && f.data["status"] == "offline")
        .await;
    assert_eq!(
        frames.last().unwrap().data["host_id"],
        enrolled.host_id.as_str()
    );
    app.stop().await;
}

/// Creates a source group and runs one backup of it through a scripted agent, ending in `status`.
async fn scripted_backup(
    app: &TestApp,
    agent: &mut TestAgent,
    host_id: &str,
    status: protocol::FinishStatus,
) -> String {
    let resp = client()
        .post(app.api(&format!("/hosts/{host_id}/source-groups")))
        .bearer_auth(&app.admin_token)
        .json(&json!({"name": "docs", "includes": ["/srv/docs"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let job: Value = client()
        .post(app.api(&format!("/hosts/{host_id}/jobs")))
        .bearer_auth(&app.admin_token)
        .json(&json!({"kind": "backup", "source_group": "docs"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = agent.expect_command_run().await;
    assert_eq!(run.job_id, job["id"].as_str().unwrap());
    agent.run_job(&run, 2, status).await;
    run.job_id
}

/// The dashboard lists the failing host first and colours today's calendar cells by outcome; the job page shows the result.
#[actix_web::test]
async fn dashboard_orders_by_severity_and_colours_the_calendar() {
    let app = spawn_app().await;
    let good = enroll(&app, "aaa-good").await;
    let bad = enroll(&app, "zzz-bad").await;
    let mut good_agent = TestAgent::connect(&app, &good).await.unwrap();
    good_agent.hello("aaa-good").await;
    let mut bad_agent = TestAgent::connect(&app, &bad).await.unwrap();
    bad_agent.hello("zzz-bad").await;
    let good_job = scripted_backup(
        &app,
        &mut good_agent,
        &good.host_id,
        protocol::FinishStatus::Succeeded,
    )
    .await;
    let bad_job = scripted_backup(
        &app,
        &mut bad_agent,
        &bad.host_id,
        protocol::FinishStatus::Failed,
    )
    .await;

    let admin = login(&app, "admin", &app.admin_password).await;
    let html = page(&app, &admin, "/").await.text().await.unwrap();
    let bad_row = html
        .find(&format!(
            r#"<tr data-host-id="{}" data-severity="failed">"#,
            bad.host_id
        ))
        .expect("the failing row");
    let good_row = html
        .find(&format!(
            r#"<tr data-host-id="{}" data-severity="ok">"#,
            good.host_id
        ))
        .expect("the healthy row");
    assert!(bad_row < good_row, "the failing host comes first");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    for (host, outcome) in [(&good.host_id, "succeeded"), (&bad.host_id, "failed")] {
        let cell = format!(r#"data-host="{host}" data-day="{today}" data-outcome="{outcome}""#);
        assert!(html.contains(&cell), "{cell}");
    }
    assert!(html.contains(&format!(r#"href="/jobs/{bad_job}""#)));

    let job_html = page(&app, &admin, &format!("/jobs/{good_job}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(job_html.contains(r#"data-terminal="true""#));
    assert!(
        job_html.contains(r#"<dd data-key="files_new">3</dd>"#),
        "the summary"
    );
    assert_eq!(
        job_html
            .matches(r#"class="line line-stdout kind-text""#)
            .count(),
        2,
        "both log lines"
    );
    let job_html = page(&app, &admin, &format!("/jobs/{bad_job}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(job_html.contains("Fatal: repository is locked"));
    good_agent.close().await;
    bad_agent.close().await;
    app.stop().await;
}

/// An unknown page is an HTML 404 with the page headers; an unknown API
/// path stays a JSON 404 in the API's error shape.
#[actix_web::test]
async fn unknown_paths_get_a_404_in_their_own_format() {
    let app = spawn_app().await;
    let resp = client().get(app.url("/no-such-page")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert!(resp.text().await.unwrap().contains("page not found"));

    let resp = client()
        .get(app.api("/no-such-thing"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

/// A job page shows its retry chain (the other attempts linked, this one
/// in bold), its host's display name and the newest `LOG_TAIL` lines of
/// its log, oldest first; an unknown job or host is a 404 page.
#[actix_web::test]
async fn job_page_shows_its_chain_host_and_log_tail() {
    use restic_manager::http::ui::LOG_TAIL;
    use restic_manager::store::models::{NewHost, NewJob, NewJobLog};
    use restic_manager::store::{self, JobKind, JobTrigger, LogStream};
    let app = spawn_app().await;
    let pool = app.state.pool.clone();
    let (first, retry) = actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let now = store::now_ms();
        let host = store::new_id();
        store::hosts::insert(
            c,
            &NewHost {
                display_name: Some("Front door".to_owned()),
                ..NewHost::new(host.clone(), "web-01", format!("seed-{host}"), now)
            },
        )
        .unwrap();
        let job = |attempt: i32, first: Option<&str>| NewJob {
            attempt,
            first_attempt_id: first.map(|f| f.to_owned().into()),
            ..NewJob::new(
                store::new_id(),
                host.clone(),
                JobKind::Backup,
                JobTrigger::Manual,
                now + i64::from(attempt),
            )
        };
        let first = store::jobs::insert(c, &job(1, None)).unwrap();
        let retry = store::jobs::insert(c, &job(2, Some(first.id.as_str()))).unwrap();
        let lines: Vec<NewJobLog> = (1..=LOG_TAIL + 5)
            .map(|seq| NewJobLog {
                job_id: retry.id.clone(),
                seq,
                ts: now + seq,
                stream: LogStream::Stdout,
                payload: format!("L{seq:05}"),
            })
            .collect();
        store::job_logs::insert_batch(c, &lines).unwrap();
        (first.id.to_string(), retry.id.to_string())
    })
    .await
    .unwrap();
    let admin = login(&app, "admin", &app.admin_password).await;

    let html = page(&app, &admin, &format!("/jobs/{retry}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Front door"), "the host's display name");
    assert!(
        html.contains(&format!(r#"<a href="/jobs/{first}">#1 "#)),
        "the first attempt linked"
    );
    assert!(html.contains("<strong>#2 "), "this attempt in bold");
    // The newest LOG_TAIL lines, oldest first; the five before them left out.
    let oldest = format!("L{:05}", 6);
    let newest = format!("L{:05}", LOG_TAIL + 5);
    let (at_oldest, at_newest) = (html.find(&oldest), html.find(&newest));
    assert!(
        at_oldest.is_some() && at_newest.is_some(),
        "the tail's ends"
    );
    assert!(at_oldest < at_newest, "oldest first");
    assert!(!html.contains("L00005"), "a line before the tail");

    // From the first attempt the chain is the same, the other one linked.
    let html = page(&app, &admin, &format!("/jobs/{first}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!(r#"<a href="/jobs/{retry}">#2 "#)));
    assert!(html.contains("<strong>#1 "));

    for path in ["/jobs/nope", "/hosts/nope"] {
        let resp = page(&app, &admin, path).await;
        assert_eq!(resp.status(), 404, "{path}");
        assert!(resp.text().await.unwrap().contains("not found"), "{path}");
    }
}

/// One host to write straight into the store.
struct SeedHost {
    hostname: String,
    display_name: Option<String>,
    online: bool,
    /// One source group per entry, named `name`, whose only backup ended
    /// with `status` at `finished_at`; none: never backed up.
    groups: Vec<(String, restic_manager::store::JobStatus, i64)>,
    /// Whether the host missed a scheduled run an hour ago.
    missed: bool,
}

/// Writes `hosts` straight into the store in one transaction (no agents,
/// no API: fast enough for thousands of hosts).
async fn seed_hosts(app: &TestApp, hosts: Vec<SeedHost>) {
    use restic_manager::store::models::{JobFinish, NewHost, NewJob, NewMissedRun, NewSchedule};
    use restic_manager::store::{self, JobKind, JobTrigger};
    let pool = app.state.pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        let now = store::now_ms();
        store::write_transaction(&mut conn, |c| {
            for seed in hosts {
                let id = store::new_id();
                store::hosts::insert(
                    c,
                    &NewHost {
                        display_name: seed.display_name,
                        arch: "x86_64".into(),
                        ..NewHost::new(id.clone(), seed.hostname, format!("seed-{id}"), now)
                    },
                )?;
                if seed.online {
                    store::hosts::set_online(c, &id, true, now)?;
                }
                for (name, status, finished_at) in seed.groups {
                    let group = store::new_id();
                    store::source_groups::insert(
                        c,
                        &crate::common::fleet::file_group(
                            &group,
                            &id,
                            name.clone(),
                            Vec::new(),
                            now,
                        ),
                    )?;
                    let job = store::jobs::insert(
                        c,
                        &NewJob {
                            source_group_id: Some(group.into()),
                            tag: Some(name),
                            ..NewJob::new(
                                store::new_id(),
                                id.clone(),
                                JobKind::Backup,
                                JobTrigger::Schedule,
                                finished_at,
                            )
                        },
                    )?;
                    store::jobs::finish(
                        c,
                        &job.id,
                        &JobFinish {
                            status,
                            finished_at,
                            exit_code: Some(0),
                            error: None,
                            warning: None,
                            stats: None,
                        },
                    )?;
                }
                if seed.missed {
                    let schedule = store::schedules::insert(
                        c,
                        &NewSchedule {
                            id: store::new_id().into(),
                            host_id: id.clone().into(),
                            cron_expr: "0 2 * * *".into(),
                            enabled: true,
                            created_at: now,
                            updated_at: now,
                            kind: restic_manager::store::ScheduleKind::Backup,
                        },
                    )?;
                    store::missed_runs::insert_ignore(
                        c,
                        &NewMissedRun {
                            id: store::new_id(),
                            host_id: id,
                            schedule_id: schedule.id.into(),
                            scheduled_at: now - 3_600_000,
                            detected_at: now,
                        },
                    )?;
                }
            }
            diesel::QueryResult::Ok(())
        })
    })
    .await
    .unwrap()
    .unwrap();
}

/// Writes `n` hosts named `fleet-1` … `fleet-n`: every third one offline
/// with no backup; of the others every fifth one with a failed latest
/// backup, the rest with a fresh successful backup.
async fn seed_fleet(app: &TestApp, n: usize) {
    use restic_manager::store::JobStatus;
    let now = restic_manager::store::now_ms();
    let hosts = (1..=n)
        .map(|i| SeedHost {
            hostname: format!("fleet-{i}"),
            display_name: None,
            online: i % 3 != 0,
            groups: match (i % 3, i % 5) {
                (0, _) => Vec::new(),
                (_, 0) => vec![("system".into(), JobStatus::Failed, now)],
                _ => vec![("system".into(), JobStatus::Succeeded, now)],
            },
            missed: false,
        })
        .collect();
    seed_hosts(app, hosts).await;
}

/// The dashboard as the admin sees it, checked to be under 200 KB.
async fn dashboard_under_the_cap(app: &TestApp) -> String {
    let admin = login(app, "admin", &app.admin_password).await;
    let html = page(app, &admin, "/").await.text().await.unwrap();
    assert!(
        html.len() < 200 * 1024,
        "the dashboard is {} bytes",
        html.len()
    );
    html
}

/// The state's "and N more" link to the filtered host list.
fn assert_more_link(html: &str, state: &str, more: usize) {
    assert!(
        html.contains(&format!(
            r#"<a href="/hosts?status={state}">and {more} more →</a>"#
        )),
        "{state}: no link to the {more} more"
    );
}

/// With thousands of hosts the dashboard stays under 200 KB: each state
/// that needs attention shows its first rows, worst state first, and
/// links to the rest; the healthy hosts are a count and a link.
#[actix_web::test]
async fn dashboard_is_bounded_and_puts_attention_first() {
    let app = spawn_app().await;
    seed_fleet(&app, 3000).await;
    let html = dashboard_under_the_cap(&app).await;
    // Every third host is offline and never backed up; of the rest, every
    // fifth failed (400, never backed up either); 1,600 are healthy.
    for (state, count) in [("failed", 400), ("offline", 1000), ("never", 1400)] {
        assert_more_link(&html, state, count - 25);
    }
    assert!(html.contains(r#"href="/hosts?status=healthy""#));
    let first = |severity: &str| {
        html.find(&format!(r#"data-severity="{severity}""#))
            .unwrap_or_else(|| panic!("no {severity} row"))
    };
    assert!(first("failed") < first("offline"));
    assert!(first("offline") < first("never"));
    assert!(first("never") < first("ok"));
    // Failed rows are in natural order of the host names.
    let failed_start = first("failed");
    let fleet_5 = html[failed_start..].find(">fleet-5<").unwrap();
    let fleet_10 = html[failed_start..].find(">fleet-10<").unwrap();
    assert!(fleet_5 < fleet_10, "fleet-5 sorts before fleet-10");

    // The links lead to the filtered host list, natural order, paged.
    let admin = login(&app, "admin", &app.admin_password).await;
    let list = page(&app, &admin, "/hosts?status=failed")
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains("400 hosts match."), "the failed filter");
    let names: Vec<&str> = list
        .split(r#"<tr data-host-id=""#)
        .skip(1)
        // Each row's first cell links the host by its name.
        .filter_map(|row| row.split("</a>").next()?.rsplit('>').next())
        .take(3)
        .collect();
    assert_eq!(names, ["fleet-5", "fleet-10", "fleet-20"]);
}

/// The host list filters by label (UI and API) and sorts names naturally.
#[actix_web::test]
async fn host_list_filters_by_label_in_natural_order() {
    let app = spawn_app().await;
    let admin = login(&app, "admin", &app.admin_password).await;
    for name in ["web-10", "web-2", "web-1"] {
        let host = enroll(&app, name).await;
        let labels = if name == "web-2" {
            json!({"env": "dev"})
        } else {
            json!({"env": "prod"})
        };
        let resp = client()
            .patch(app.api(&format!("/hosts/{}", host.host_id)))
            .header("cookie", &admin.cookie)
            .header("x-csrf-token", &admin.csrf)
            .json(&json!({ "labels": labels }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let all: Value = page(&app, &admin, "/api/v1/hosts")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-1", "web-2", "web-10"]);
    let prod: Value = page(&app, &admin, "/api/v1/hosts?label=env%3Dprod")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(prod["total"], 2);
    assert_eq!(prod["items"][1]["hostname"], "web-10");
    let html = page(&app, &admin, "/hosts?label=env%3Ddev")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("1 host matches.") && html.contains(">web-2<"),
        "{html}"
    );
    let bad = page(&app, &admin, "/api/v1/hosts?label=nokey").await;
    assert_eq!(bad.status(), 400);
}

/// The dashboard's size does not depend on the fleet: with many hosts in
/// every state, several source groups each and the longest names full of
/// characters that HTML escapes, each state shows at most its first rows
/// (a healthy host's many groups included) and the page stays under
/// 200 KB; without the bounds it would be several times that.
#[actix_web::test]
async fn dashboard_size_is_bounded_in_every_state() {
    use restic_manager::store::JobStatus::{Failed, Succeeded};
    const PER_STATE: usize = 80;
    let app = spawn_app().await;
    let now = restic_manager::store::now_ms();
    let days_ago = |d: i64| now - d * 86_400_000;
    // A 64-character group name (the API's longest) and a 255-character
    // display name that escapes to several times its length.
    let groups = |n: usize, status: &[restic_manager::store::JobStatus], at: i64| {
        (0..n)
            .map(|g| {
                (
                    format!("{g:02}{}", "g".repeat(62)),
                    status[g % status.len()],
                    at,
                )
            })
            .collect::<Vec<_>>()
    };
    let long = |state: &str, i: usize| format!("{state}-{i:03}-{}", "<&\">".repeat(60));
    let mut hosts = Vec::new();
    for i in 0..PER_STATE {
        let host = |state: &str| SeedHost {
            hostname: long(state, i),
            display_name: (i % 2 == 0).then(|| long(state, i)),
            online: true,
            groups: Vec::new(),
            missed: false,
        };
        hosts.push(SeedHost {
            groups: groups(3, &[Failed, Succeeded], now),
            ..host("failed")
        });
        hosts.push(SeedHost {
            groups: groups(3, &[Succeeded], now),
            missed: true,
            ..host("missed")
        });
        hosts.push(SeedHost {
            online: false,
            groups: groups(3, &[Succeeded], now),
            ..host("offline")
        });
        hosts.push(host("never"));
        hosts.push(SeedHost {
            groups: groups(3, &[Succeeded], days_ago(5)),
            ..host("stale")
        });
        hosts.push(SeedHost {
            groups: groups(40, &[Succeeded], now),
            ..host("healthy")
        });
    }
    seed_hosts(&app, hosts).await;
    let html = dashboard_under_the_cap(&app).await;
    // Failed hosts show a row per failed group (two each); the others one
    // row per host.
    for (state, rows, more) in [
        ("failed", 25, PER_STATE - 13),
        ("missed", 25, PER_STATE - 25),
        ("offline", 25, PER_STATE - 25),
        ("never", 25, PER_STATE - 25),
        ("stale", 25, PER_STATE - 25),
    ] {
        assert_eq!(
            html.matches(&format!(r#"data-severity="{state}""#)).count(),
            rows,
            "{state} rows"
        );
        assert_more_link(&html, state, more);
    }
    assert_eq!(html.matches(r#"data-severity="ok""#).count(), 10);
    assert_more_link(&html, "healthy", PER_STATE - 1);
    assert!(
        !html.contains(&"&lt;&amp;&quot;&gt;".repeat(20)),
        "long names are clipped"
    );
}

/// The routes whose reads run alongside the caller's check, each with a
/// request that a valid caller gets refused for (a bad query) or finds
/// nothing at (an unknown id): (path, under the API?, what a valid caller gets).
const READ_ALONGSIDE: [(&str, bool, u16); 10] = [
    ("/hosts?status=sideways", true, 400),
    ("/hosts/no-such-host", true, 404),
    ("/jobs?status=sideways", true, 400),
    ("/jobs/no-such-job", true, 404),
    ("/jobs/no-such-job/logs", true, 404),
    ("/jobs/no-such-job/logs?after_seq=-1", true, 400),
    ("/?calendar=sideways", false, 400),
    ("/hosts?status=sideways", false, 400),
    ("/hosts/no-such-host", false, 404),
    ("/jobs/no-such-job", false, 404),
];

/// Asserts that `resp` refuses an ended caller: 401 from the API, the
/// login page from the UI.
fn assert_refused(resp: &reqwest::Response, path: &str, api: bool) {
    if api {
        assert_eq!(resp.status(), 401, "{path}");
    } else {
        assert_eq!(resp.status(), 303, "{path}");
        let to = resp.headers()["location"].to_str().unwrap();
        assert!(to.starts_with("/login"), "{path}: {to}");
    }
}

/// A credential that read a moment ago, so that its next reads run
/// alongside its check, gets nothing once ended (token revoked, session
/// logged out): 401 or the login page on every such route, never the 400
/// or 404 the reads would answer, nor data. A live caller gets those
/// answers. (A failed check makes the credential's next requests wait
/// for their check, so each route gets a token of its own.)
#[actix_web::test]
async fn an_ended_credential_reads_nothing_while_its_check_runs() {
    let app = spawn_app().await;
    let http = client();
    let get = |path: &str, api: bool, token: &str| {
        let url = if api { app.api(path) } else { app.url(path) };
        http.get(url).bearer_auth(token).send()
    };
    for (path, api, live_status) in READ_ALONGSIDE {
        let created = http
            .post(app.api("/api-tokens"))
            .bearer_auth(&app.admin_token)
            .json(&json!({"name": "reader"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        let token = created["token"].as_str().unwrap().to_owned();
        // Live, twice (the second runs alongside its check): the reads' answer.
        for _ in 0..2 {
            let resp = get(path, api, &token).await.unwrap();
            assert_eq!(resp.status(), live_status, "{path}");
        }
        let revoked = http
            .delete(app.api(&format!("/api-tokens/{}", created["id"].as_str().unwrap())))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 204);
        assert_refused(&get(path, api, &token).await.unwrap(), path, api);
    }

    // A session: it reads the host list (data), logs out, and its next
    // read, alongside its check, is the login page with no host in it.
    create_host(&app, "alpha").await;
    let session = login(&app, "admin", &app.admin_password).await;
    let listed = page(&app, &session, "/hosts").await;
    assert_eq!(listed.status(), 200);
    assert!(listed.text().await.unwrap().contains("alpha"));
    let out = session
        .post(&app, "/auth/logout")
        .header("X-CSRF-Token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let resp = page(&app, &session, "/hosts").await;
    assert_refused(&resp, "/hosts", false);
    assert!(!resp.text().await.unwrap().contains("alpha"));
    app.stop().await;
}
