#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! Notifications (issue 15 A) against receivers inside the test: a webhook
//! server that records what it gets (and answers 500 when told to), and a
//! minimal SMTP sink. The server under test is real; the agent is the
//! protocol-level test agent, since what is tested is the server's side.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::agent::{db, enroll, eventually, TestAgent};
use crate::common::api::{login, user_with_token};
use crate::common::server::{client, spawn_app_with, TestApp};
use restic_manager::actors::NewJobRequest;
use restic_manager::auth::Role;
use restic_manager::config::ServerConfig;
use restic_manager::notify::deliver;
use restic_manager::protocol::{self, FinishStatus};
use restic_manager::store::{self, models};

/// What the webhook receiver got, and what it answers next.
#[derive(Default)]
struct Received {
    bodies: Vec<(Option<String>, Value)>,
    /// Statuses to answer, in order; 200 once empty.
    answers: VecDeque<u16>,
    /// Requests seen (answered 2xx or not).
    requests: usize,
}

type Shared = Arc<Mutex<Received>>;

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<Shared>) -> HttpResponse {
    let mut got = state.lock().unwrap();
    got.requests += 1;
    let status = got.answers.pop_front().unwrap_or(200);
    if status == 200 {
        let signature = req
            .headers()
            .get(deliver::SIGNATURE_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        let value: Value = serde_json::from_slice(&body).unwrap();
        if let Some(sig) = &signature {
            assert_eq!(
                sig,
                &deliver::signature("s3cret-signing-key", &body),
                "signature"
            );
        }
        got.bodies.push((signature, value));
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

/// Starts a webhook receiver; returns its URL and what it records.
fn receiver() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let data = web::Data::new(shared.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            // A summary of a thousand events is ~300 KB.
            .app_data(web::PayloadConfig::new(4 << 20))
            .default_service(web::to(receive))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    (format!("http://{addr}/hook"), shared)
}

/// A test server whose notifier ticks fast and retries soon.
fn quick(config: &mut ServerConfig) {
    config.notify.tick = Duration::from_millis(50);
    config.notify.retry_base = Duration::from_millis(50);
    config.notify.offline_grace = Duration::from_secs(1);
}

async fn add_channel(app: &TestApp, body: Value) -> Value {
    let response = client()
        .post(app.api("/notification-channels"))
        .bearer_auth(&app.admin_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let value: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{value}");
    value
}

fn webhook(url: &str, events: &[&str]) -> Value {
    json!({"name": "ops", "type": "webhook", "url": url, "secret": "s3cret-signing-key", "events": events})
}

fn bodies(shared: &Shared) -> Vec<Value> {
    shared
        .lock()
        .unwrap()
        .bodies
        .iter()
        .map(|(_, b)| b.clone())
        .collect()
}

/// Waits until the receiver holds `n` bodies, then a few more ticks to
/// see that nothing else comes.
async fn settle(shared: &Shared, n: usize) -> Vec<Value> {
    eventually(&format!("{n} notifications"), || async {
        (bodies(shared).len() >= n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    bodies(shared)
}

/// Hosts that were online once and went offline at `seen`.
async fn offline_hosts(app: &TestApp, n: usize, seen: i64) {
    db(app, move |c| {
        store::write_transaction(c, |c| {
            for i in 0..n {
                let id = store::new_id();
                let new =
                    models::NewHost::new(id.clone(), format!("lost-{i:04}"), id.clone(), seen);
                store::hosts::insert(c, &new)?;
                store::hosts::set_online(c, &id, false, seen)?;
            }
            Ok::<_, diesel::result::Error>(())
        })
    })
    .await;
}

/// A host whose backups fail three times and then succeed gives exactly
/// one `job.failed` and one `job.recovered`, signed with the secret.
#[actix_web::test]
async fn one_failure_and_one_recovery() {
    let (url, shared) = receiver();
    let app = spawn_app_with(quick).await;
    add_channel(&app, webhook(&url, &["job.failed"])).await;
    let host = enroll(&app, "web-1").await;
    let mut agent = TestAgent::connect(&app, &host).await.unwrap();
    agent.hello("web-1").await;
    let group = models::NewSourceGroup {
        id: store::new_id().into(),
        host_id: host.host_id.clone().into(),
        name: "etc".to_owned(),
        includes: vec!["/etc".to_owned()],
        excludes: Vec::new(),
        retention_policy: None,
        retry_max: 0,
        retry_backoff_seconds: 0,
        created_at: store::now_ms(),
        updated_at: store::now_ms(),
        prune_after_forget: false,
        kind: "files".to_owned(),
        dump: None,
        dump_password_sealed: None,
        options: None,
    };
    db(&app, move |c| store::source_groups::insert(c, &group)).await;
    for status in [
        FinishStatus::Failed,
        FinishStatus::Failed,
        FinishStatus::Failed,
        FinishStatus::Succeeded,
    ] {
        app.state
            .actors
            .create_job(NewJobRequest {
                host_id: host.host_id.clone(),
                kind: protocol::JobKind::Backup,
                source_group: Some("etc".to_owned()),
                requested_by: "admin".to_owned(),
                source_addr: None,
                restore: None,
                drill: None,
            })
            .await
            .unwrap();
        let run = agent.expect_command_run().await;
        agent.run_job(&run, 0, status).await;
    }
    let got = settle(&shared, 2).await;
    let names: Vec<&str> = got.iter().map(|b| b["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["job.failed", "job.recovered"], "{got:#?}");
    assert_eq!(got[0]["state"], "firing");
    assert_eq!(got[0]["host"]["hostname"], "web-1");
    assert_eq!(got[0]["source_group"], "etc");
    assert!(got[0]["url"].as_str().unwrap().starts_with("/jobs/"));
    assert_eq!(got[1]["state"], "resolved");
    assert!(got[1]["since"].is_string());
    assert!(shared
        .lock()
        .unwrap()
        .bodies
        .iter()
        .all(|(sig, _)| sig.is_some()));
    agent.close().await;
}

/// A thousand hosts lost at once are one summary message.
#[actix_web::test]
async fn a_thousand_hosts_offline_are_one_summary() {
    let (url, shared) = receiver();
    let app = spawn_app_with(quick).await;
    add_channel(&app, webhook(&url, &["host.offline"])).await;
    offline_hosts(&app, 1000, store::now_ms() - 60_000).await;
    let got = settle(&shared, 1).await;
    assert_eq!(got.len(), 1, "one message");
    assert_eq!(got[0]["event"], "summary");
    assert_eq!(got[0]["count"], 1000);
    assert_eq!(got[0]["counts"]["host.offline"], 1000);
    assert_eq!(got[0]["events"].as_array().unwrap().len(), 1000);
}

/// A receiver that answers 500 twice, then 200, gets the event once; the
/// deliveries list shows the three attempts.
#[actix_web::test]
async fn retried_until_taken_and_sent_once() {
    let (url, shared) = receiver();
    shared.lock().unwrap().answers.extend([500, 500]);
    let app = spawn_app_with(quick).await;
    let channel = add_channel(&app, webhook(&url, &["host.offline"])).await;
    offline_hosts(&app, 1, store::now_ms() - 60_000).await;
    let got = settle(&shared, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["event"], "host.offline");
    assert_eq!(shared.lock().unwrap().requests, 3);
    let list: Value = client()
        .get(app.api(&format!(
            "/notification-channels/{}/deliveries",
            channel["id"].as_str().unwrap()
        )))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = &list["items"][0];
    assert_eq!(item["status"], "delivered", "{list}");
    assert_eq!(item["attempts"], 3);
    assert_eq!(item["last_status"], 200);

    // The Notifications page (admin only) lists the channel and the delivery.
    let admin = login(&app, "admin", &app.admin_password).await;
    let page = admin.page(&app, "/notifications").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"id="channel-list""#) && html.contains(">ops<"),
        "{html}"
    );
    assert!(
        html.contains("host.offline: lost-0000") && html.contains(">delivered<"),
        "{html}"
    );
    user_with_token(&app, "viewer1", Role::Viewer, "viewer-password-1").await;
    let viewer = login(&app, "viewer1", "viewer-password-1").await;
    assert_eq!(
        viewer
            .page(&app, "/notifications")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let api = viewer
        .get(&app, "/notification-channels")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 403);
}

/// An event whose receiver is down when the server stops is delivered
/// after a restart.
#[actix_web::test]
async fn a_restart_loses_nothing() {
    let (url, shared) = receiver();
    shared.lock().unwrap().answers.extend([503; 1000]);
    let app = spawn_app_with(quick).await;
    add_channel(&app, webhook(&url, &["host.offline"])).await;
    offline_hosts(&app, 1, store::now_ms() - 60_000).await;
    eventually("a refused attempt", || async {
        (shared.lock().unwrap().requests > 0).then_some(())
    })
    .await;
    app.stop().await;
    shared.lock().unwrap().answers.clear();
    let app = app.start_again().await;
    let got = settle(&shared, 1).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["event"], "host.offline");
    drop(app);
}

/// Bad channels are refused with the field named; the secret is never
/// answered, and stored sealed.
#[actix_web::test]
async fn channels_are_checked_and_keep_their_secret() {
    let app = spawn_app_with(quick).await;
    let post = |body: Value| {
        client()
            .post(app.api("/notification-channels"))
            .bearer_auth(&app.admin_token)
            .json(&body)
            .send()
    };
    for (body, field) in [
        (
            json!({"name": "x", "type": "sms", "events": ["job.failed"]}),
            "type",
        ),
        (
            json!({"name": "x", "type": "webhook", "url": "https://h/", "events": ["job.exploded"]}),
            "events",
        ),
        (
            json!({"name": "x", "type": "webhook", "url": "https://u:p@h/", "events": ["job.failed"]}),
            "url",
        ),
        (
            json!({"name": "x", "type": "email", "to": ["nope"], "events": ["job.failed"]}),
            "to",
        ),
        (
            json!({"name": "x", "type": "webhook", "url": "https://h/", "events": ["job.failed"], "colour": 1}),
            "colour",
        ),
    ] {
        let response = post(body).await.unwrap();
        assert_eq!(response.status(), 400);
        let text = response.text().await.unwrap();
        assert!(text.contains(field), "{field}: {text}");
    }
    let created = add_channel(
        &app,
        webhook("https://hooks.example/x", &["job.failed", "host.offline"]),
    )
    .await;
    assert_eq!(created["secret_set"], true);
    assert!(created.get("secret").is_none());
    assert_eq!(
        post(webhook("https://h/", &["job.failed"]))
            .await
            .unwrap()
            .status(),
        409
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let sealed = db(&app, move |c| store::notifications::get(c, &id))
        .await
        .unwrap();
    let raw = sealed.secret_sealed.unwrap();
    assert!(!raw.windows(6).any(|w| w == b"s3cret"), "sealed at rest");
    // PUT without a secret keeps it; null clears it.
    let put = |body: Value| {
        client()
            .put(app.api(&format!(
                "/notification-channels/{}",
                created["id"].as_str().unwrap()
            )))
            .bearer_auth(&app.admin_token)
            .json(&body)
            .send()
    };
    let kept: Value = put(
        json!({"name": "ops", "type": "webhook", "url": "https://h/", "events": ["job.failed"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(kept["secret_set"], true, "{kept}");
    let cleared: Value = put(json!({"name": "ops", "type": "webhook", "url": "https://h/", "events": ["job.failed"], "secret": null}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["secret_set"], false, "{cleared}");
}

/// A minimal SMTP server: records each mail's DATA.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = mails.clone();
    actix_web::rt::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let store = store.clone();
            actix_web::rt::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(text) = data.as_mut() {
                        if line == "." {
                            store.lock().unwrap().push(data.take().unwrap());
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            text.push_str(&line);
                            text.push('\n');
                        }
                        continue;
                    }
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            break;
                        }
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(answer).await.unwrap();
                }
            });
        }
    });
    (port, mails)
}

/// A mail channel's test message reaches the SMTP server.
#[actix_web::test]
async fn mail_reaches_the_smtp_server() {
    let (port, mails) = smtp_sink().await;
    let app = spawn_app_with(|c| {
        quick(c);
        c.notify.smtp_url = Some(restic_manager::config::SecretUrl::new(format!(
            "smtp://127.0.0.1:{port}?tls=none"
        )));
        c.notify.smtp_from = Some("backups@example.com".to_owned());
    })
    .await;
    let channel = add_channel(
        &app,
        json!({"name": "mail", "type": "email", "to": ["ops@example.com"], "events": ["host.offline"]}),
    )
    .await;
    let response = client()
        .post(app.api(&format!(
            "/notification-channels/{}/test",
            channel["id"].as_str().unwrap()
        )))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    // And an event goes out as a mail through the outbox.
    offline_hosts(&app, 1, store::now_ms() - 60_000).await;
    eventually("two mails", || async {
        (mails.lock().unwrap().len() >= 2).then_some(())
    })
    .await;
    let mails = mails.lock().unwrap().clone();
    assert!(
        mails[0].contains("From: backups@example.com"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("To: ops@example.com"), "{}", mails[0]);
    assert!(
        mails[1].contains("Subject: [restic-manager] host.offline: lost-0000"),
        "{}",
        mails[1]
    );
}
