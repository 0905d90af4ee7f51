//! Issue 15, part B: the findings of the outside review, one test each
//! (each failed before its fix). Scripted agents over real WebSockets and
//! REST calls on a real server, as in `agent_channel` and `api`.

use std::time::Duration;

use crate::common::agent::{enroll, log_line, run_now, Enrolled, TestAgent};
use crate::common::api::{assert_error, audit_rows, call, create_host, db, get, login};
use crate::common::server::{client, spawn_app, spawn_app_with, TestApp};
use reqwest::{Method, StatusCode};
use restic_manager::actors::events::{Event, EventFilter, Subscribe};
use restic_manager::config::TlsFiles;
use restic_manager::protocol;
use restic_manager::store;
use serde_json::json;

/// Enrols, connects and says hello.
async fn online_agent(app: &TestApp, hostname: &str) -> (Enrolled, TestAgent) {
    let enrolled = enroll(app, hostname).await;
    let mut agent = TestAgent::connect(app, &enrolled).await.expect("connect");
    agent.hello(hostname).await;
    (enrolled, agent)
}

/// A queued `check` job of a host, created as "run now" does.
async fn run_check(app: &TestApp, host_id: &str) -> String {
    run_now(app, host_id, protocol::JobKind::Check, None)
        .await
        .id
        .to_string()
}

/// B.4: an agent's progress and log lines for another host's job are not
/// published to that job's live view; the owner's are.
#[actix_web::test]
async fn live_events_only_for_the_sessions_own_jobs() {
    let app = spawn_app().await;
    let (_a, mut intruder) = online_agent(&app, "intruder").await;
    let (b, mut owner) = online_agent(&app, "owner").await;
    let job_id = run_check(&app, &b.host_id).await;
    let run = owner.expect_command_run().await;
    assert_eq!(run.job_id, job_id);
    let mut events = app
        .state
        .actors
        .events
        .send(Subscribe {
            filter: EventFilter::Job(job_id.clone()),
        })
        .await
        .unwrap();

    intruder
        .send(protocol::JobProgress {
            job_id: job_id.clone(),
            percent_done: 0.9,
            files_done: 1,
            total_files: 1,
            bytes_done: 1,
            total_bytes: 1,
            eta_seconds: None,
            throughput_bps: 1,
            step: None,
            dumped_bytes: None,
        })
        .await;
    intruder.send(log_line(&job_id, 1)).await;
    // A bad frame's answer: the intruder's frames before it were handled
    // (and anything they published is in the events' mailbox).
    intruder.send_text("{}").await;
    intruder.expect_error().await;

    owner.send(log_line(&job_id, 7)).await;
    let first = tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("an event")
        .expect("subscribed");
    match &*first {
        Event::JobLog { host_id, seq, .. } => {
            assert_eq!(host_id.as_str(), b.host_id);
            assert_eq!(*seq, 7);
        }
        other => panic!("the intruder's event was published: {other:?}"),
    }
}

/// A client whose connections come from `local` (127.0.0.x: another
/// client address on the loopback).
fn client_from(local: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from(local))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn try_login(client: &reqwest::Client, app: &TestApp, password: &str) -> reqwest::Response {
    client
        .post(app.api("/auth/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap()
}

/// B.1: failures for `admin` from another address never lock the owner
/// out (slowed down, then logged in); the failing address gets 429 with
/// Retry-After.
#[actix_web::test]
async fn failed_logins_elsewhere_do_not_lock_the_owner_out() {
    let app = spawn_app().await;
    let attacker = client_from([127, 0, 0, 2]);
    for _ in 0..5 {
        let resp = try_login(&attacker, &app, "wrong-password").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = try_login(&attacker, &app, "wrong-password").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));

    let started = std::time::Instant::now();
    let owner = try_login(&client_from([127, 0, 0, 1]), &app, &app.admin_password).await;
    assert_eq!(
        owner.status(),
        StatusCode::OK,
        "the owner is not locked out"
    );
    assert!(
        started.elapsed() >= restic_manager::http::auth::SLOWED_LOGIN_DELAY,
        "an account under attack is slowed down"
    );
    // One audit row for the attacker's six failures (B.2).
    let rows = audit_rows(&app, "login.failed").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].source_addr.as_deref(), Some("127.0.0.2"));
    assert_eq!(rows[0].detail.as_ref().unwrap()["count"], 6);
}

/// B.6: a repository URL with `user:password@` is refused, pointing to
/// `username` and `credential`; nothing is stored.
#[actix_web::test]
async fn repository_url_with_password_is_refused() {
    let app = spawn_app().await;
    let host = create_host(&app, "web-01").await;
    let answer = call(
        &app,
        &app.admin_token,
        Method::PUT,
        &format!("/hosts/{host}/repository"),
        Some(json!({"url": "rest:https://web01:hunter2@backup.example:8000/web01", "password": "pw"})),
    )
    .await;
    let message = assert_error(&answer, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(
        message.contains("`username`") && message.contains("`credential`"),
        "{message}"
    );
    assert!(!message.contains("hunter2"));
    let stored = get(&app, &app.admin_token, &format!("/hosts/{host}/repository")).await;
    assert_eq!(stored.0, StatusCode::NOT_FOUND, "{}", stored.1);
}

/// B.11: a server under TLS sends Strict-Transport-Security; a plain one
/// does not.
#[actix_web::test]
async fn hsts_under_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, crate::agent_tls::LEAF_PEM).unwrap();
    std::fs::write(&key, crate::agent_tls::LEAF_KEY_PEM).unwrap();
    let app = spawn_app_with(|c| {
        c.tls = Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        })
    })
    .await;
    let https = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let resp = https
        .get(format!("https://localhost:{}/healthz", app.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["strict-transport-security"],
        restic_manager::http::HSTS
    );
    let plain = spawn_app().await;
    let resp = client().get(plain.url("/healthz")).send().await.unwrap();
    assert!(!resp.headers().contains_key("strict-transport-security"));
}

/// B.11: a session older than its absolute lifetime is refused however
/// recently it was used.
#[actix_web::test]
async fn sessions_end_after_their_lifetime() {
    let app = spawn_app().await;
    let browser = login(&app, "admin", &app.admin_password).await;
    assert_eq!(browser.get(&app, "/me").send().await.unwrap().status(), 200);
    let lifetime = i64::try_from(app.config.session_lifetime.as_millis()).unwrap();
    db(&app, move |conn| {
        use diesel::prelude::*;
        use restic_manager::store::schema::sessions;
        let now = store::now_ms();
        diesel::update(sessions::table)
            .set((
                sessions::created_at.eq(now - lifetime - 1000),
                sessions::last_seen_at.eq(now),
            ))
            .execute(conn)
            .unwrap();
    })
    .await;
    assert_eq!(browser.get(&app, "/me").send().await.unwrap().status(), 401);
}

/// B.7: a `schedule.fire` for a schedule the host does not have is a bad
/// frame (answered, counted towards the 1008 close), not a silent warning.
#[actix_web::test]
async fn fire_of_an_unknown_schedule_is_a_bad_frame() {
    let app = spawn_app().await;
    let (_host, mut agent) = online_agent(&app, "fires").await;
    let id = agent
        .send(protocol::ScheduleFire {
            schedule_id: "no-such-schedule".to_owned(),
            scheduled_at: chrono::Utc::now(),
            kind: None,
        })
        .await;
    let error = agent.expect_error().await;
    assert_eq!(error.code, protocol::ERROR_BAD_FRAME);
    assert_eq!(error.correlation_id.as_deref(), Some(id.as_str()));
    assert!(
        error.detail.contains("no-such-schedule"),
        "{}",
        error.detail
    );
    // Ten more in a minute close the session (1008).
    for _ in 0..10 {
        agent
            .send(protocol::ScheduleFire {
                schedule_id: "no-such-schedule".to_owned(),
                scheduled_at: chrono::Utc::now(),
                kind: None,
            })
            .await;
    }
    let (code, _) = agent.expect_close().await;
    assert_eq!(code, Some(1008));
}
