//! Capabilities and update notices (issue 14 §4) over the real server
//! and WebSocket: a request that needs a capability the agent did not
//! declare answers 409 `agent_lacks_capability` naming it and nothing
//! goes to the agent; an agent without `capabilities` is held to
//! protocol 1's set; an agent older than the newest release hears of it
//! once per session, a current or newer one never; `GET
//! /hosts?update_available=` lists them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use reqwest::{Method, StatusCode};
use restic_manager::agent_release::{parse_version, AgentRelease};
use restic_manager::protocol::{self, Envelope, ServerToAgent};
use restic_manager::store;
use serde_json::{json, Value};

use crate::common::agent::{enroll, hello, Enrolled, TestAgent};
use crate::common::api::{add_snapshot, assert_error, call, db, get, login};
use crate::common::e2e::{wait_for, wait_online};
use crate::common::server::{spawn_app, spawn_app_with, TestApp};

const SNAPSHOT: &str = "af4db64e47b173d8c60c76730f4428b80ca305e1b38b7d28fc8e066c29b1b4c8";

/// Connects a scripted agent with this `hello` and waits until its host
/// is online (the greeting pushed).
async fn connect(app: &TestApp, enrolled: &Enrolled, hello: protocol::Hello) -> TestAgent {
    let mut agent = TestAgent::connect(app, enrolled).await.unwrap();
    agent.send(hello).await;
    agent
        .wait_for(|m| matches!(m, ServerToAgent::ScheduleSet(_)).then_some(()))
        .await;
    wait_online(app, &enrolled.host_id).await;
    agent
}

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    call(app, &app.admin_token, Method::POST, path, Some(body)).await
}

/// Queues an `init` job (a protocol 1 kind) and returns the messages
/// the agent got before the next `command.run` (this one, or an earlier
/// job sent again after a reconnect; the session sends jobs after its
/// greeting and its notice): proof of what was (not) sent in between.
async fn messages_until_a_job(
    app: &TestApp,
    host: &str,
    agent: &mut TestAgent,
) -> Vec<Envelope<ServerToAgent>> {
    let (status, job) = post(app, &format!("/hosts/{host}/jobs"), json!({"kind": "init"})).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let (_, skipped) = agent
        .wait_for(|m| matches!(m, ServerToAgent::CommandRun(_)).then_some(()))
        .await;
    skipped
}

fn assert_lacks(got: (StatusCode, Value), capability: &str) {
    assert_error(&got, StatusCode::CONFLICT, "agent_lacks_capability");
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("\"{capability}\"")), "{message}");
}

/// An agent that declares neither `restore` nor `cancel`: a restore is
/// refused with 409 naming `restore`, stopping its running job with 409
/// naming `cancel`, and neither a restore `command.run` nor a
/// `command.cancel` reaches it.
#[actix_web::test]
async fn a_missing_capability_is_refused_and_nothing_is_sent() {
    let app = spawn_app().await;
    let enrolled = enroll(&app, "old-1").await;
    let host = enrolled.host_id.clone();
    let mut old = hello("old-1");
    old.capabilities = Some(vec![protocol::CAPABILITY_LOCAL_CRON.to_owned()]);
    let mut agent = connect(&app, &enrolled, old).await;
    add_snapshot(&app, &host, SNAPSHOT).await;

    let restore = json!({"kind": "restore", "snapshot_id": SNAPSHOT, "target": "/tmp/r"});
    assert_lacks(
        post(&app, &format!("/hosts/{host}/jobs"), restore).await,
        "restore",
    );
    let drill = json!({"kind": "drill"});
    assert_lacks(
        post(&app, &format!("/hosts/{host}/jobs"), drill).await,
        "drill",
    );

    // The next command is the init queued after the refusals.
    let (status, job) = post(
        &app,
        &format!("/hosts/{host}/jobs"),
        json!({"kind": "init"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    let run = agent.expect_command_run().await;
    assert_eq!(run.job_id, job_id, "no restore or drill was sent before it");
    agent.start_job(&run).await;
    wait_for("the init job running", async || {
        let (_, job) = get(&app, &app.admin_token, &format!("/jobs/{job_id}")).await;
        (job["status"] == "running").then_some(())
    })
    .await;
    assert_lacks(
        post(&app, &format!("/jobs/{job_id}/cancel"), json!({})).await,
        "cancel",
    );

    // The job finishes on its own; no command.cancel came before the ack.
    let finished =
        crate::common::agent::finished_envelope(&job_id, protocol::FinishStatus::Succeeded);
    agent.send_envelope(&finished).await;
    let (_, skipped) = agent
        .wait_for(|m| match m {
            ServerToAgent::Ack(ack) if ack.correlation_id == finished.id => Some(()),
            _ => None,
        })
        .await;
    assert!(
        !skipped
            .iter()
            .any(|e| matches!(e.message, ServerToAgent::CommandCancel(_))),
        "{skipped:?}"
    );
    app.stop().await;
}

/// A `hello` without `capabilities` is protocol 1: its host is held to
/// `cancel`, `hooks` and `local_cron`, so a restore is refused.
#[actix_web::test]
async fn an_agent_without_the_field_gets_protocol_1() {
    let app = spawn_app().await;
    let enrolled = enroll(&app, "p1").await;
    let host = enrolled.host_id.clone();
    let mut first = hello("p1");
    first.capabilities = None;
    let _agent = connect(&app, &enrolled, first).await;
    let id = host.clone();
    let row = db(&app, move |c| store::hosts::get(c, &id).unwrap())
        .await
        .unwrap();
    assert_eq!(row.capabilities, ["cancel", "hooks", "local_cron"]);
    let restore = json!({"kind": "restore", "snapshot_id": SNAPSHOT, "target": "/tmp/r"});
    let (status, body) = post(&app, &format!("/hosts/{host}/jobs"), restore).await;
    // Refused before the snapshot is looked up: the capability comes first.
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "agent_lacks_capability", "{body}");
    app.stop().await;
}

/// The configured newest release with its URLs.
fn release(latest: &str) -> AgentRelease {
    AgentRelease {
        latest: parse_version(latest).unwrap(),
        package_url: "https://apt.example/restic-manager".to_owned(),
        changelog_url: Some("https://example.org/changes".to_owned()),
    }
}

fn notices(messages: &[Envelope<ServerToAgent>]) -> Vec<protocol::AgentUpdateAvailable> {
    messages
        .iter()
        .filter_map(|e| match &e.message {
            ServerToAgent::AgentUpdateAvailable(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// An agent older than the newest release gets exactly one
/// `agent.update_available` per session (and one again after it
/// reconnects); a current, a newer and an unreadable version get none.
#[actix_web::test]
async fn update_notice_once_per_session_and_only_to_older_agents() {
    let app = spawn_app_with(|c| c.agent_release = release("0.5.0")).await;
    for (version, expected) in [
        ("0.4.9", 1),
        ("0.5.0-rc.1", 1),
        ("0.5.0", 0),
        ("0.6.0", 0),
        ("banana", 0),
    ] {
        let name = format!("agent-{version}");
        let enrolled = enroll(&app, &name).await;
        for session in 0..2 {
            let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
            let mut hi = hello(&name);
            hi.agent_version = version.to_owned();
            agent.send(hi).await;
            wait_online(&app, &enrolled.host_id).await;
            // Everything sent after hello up to a later command: the
            // greeting and, for an older agent, one notice.
            let got = notices(&messages_until_a_job(&app, &enrolled.host_id, &mut agent).await);
            assert_eq!(got.len(), expected, "{version}, session {session}: {got:?}");
            if let Some(notice) = got.first() {
                assert_eq!(notice.latest_version, "0.5.0");
                assert_eq!(notice.package_url, "https://apt.example/restic-manager");
                assert_eq!(
                    notice.changelog.as_deref(),
                    Some("https://example.org/changes")
                );
            }
            agent.close().await;
            let path = format!("/hosts/{}", enrolled.host_id);
            wait_for("the host offline", async || {
                let (_, host) = get(&app, &app.admin_token, &path).await;
                (host["status"] == "offline").then_some(())
            })
            .await;
        }
    }
    app.stop().await;
}

/// Creates a host that reported `version` (or none).
async fn host_with_version(app: &TestApp, name: &str, version: Option<&str>) -> String {
    let id = crate::common::api::create_host(app, name).await;
    let (host, version) = (id.clone(), version.map(str::to_owned));
    db(app, move |c| {
        use diesel::prelude::*;
        use restic_manager::store::schema::hosts;
        diesel::update(hosts::table.find(&host))
            .set(hosts::agent_version.eq(version))
            .execute(c)
            .unwrap();
    })
    .await;
    id
}

/// `update_available` and `latest_agent_version` on every host;
/// `?update_available=true` lists the older agents only, `false` the
/// others (unknown and unreadable versions included); a bad value is 400
/// naming the parameter.
#[actix_web::test]
async fn hosts_show_and_filter_update_available() {
    let app = spawn_app_with(|c| c.agent_release = release("1.2.0")).await;
    let old = host_with_version(&app, "a-old", Some("1.1.9")).await;
    let rc = host_with_version(&app, "b-rc", Some("1.2.0-rc.1")).await;
    let current = host_with_version(&app, "c-current", Some("1.2.0")).await;
    let newer = host_with_version(&app, "d-newer", Some("1.3.0")).await;
    let unknown = host_with_version(&app, "e-unknown", None).await;
    let garbage = host_with_version(&app, "f-garbage", Some("nightly")).await;
    let ids = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, all) = get(&app, &app.admin_token, "/hosts").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    for host in all["items"].as_array().unwrap() {
        assert_eq!(host["latest_agent_version"], "1.2.0", "{host}");
        let older = [&old, &rc].contains(&&host["id"].as_str().unwrap().to_owned());
        assert_eq!(host["update_available"], older, "{host}");
    }
    let (status, only) = get(&app, &app.admin_token, "/hosts?update_available=true").await;
    assert_eq!(status, StatusCode::OK, "{only}");
    assert_eq!(ids(&only), [old.clone(), rc.clone()]);
    assert_eq!(only["total"], 2);
    let (_, others) = get(
        &app,
        &app.admin_token,
        "/hosts?update_available=false&limit=2",
    )
    .await;
    assert_eq!(ids(&others), [current.clone(), newer.clone()], "paged");
    assert_eq!(others["total"], 4);
    let (_, rest) = get(
        &app,
        &app.admin_token,
        "/hosts?update_available=false&offset=2",
    )
    .await;
    assert_eq!(ids(&rest), [unknown, garbage]);
    let (_, one) = get(&app, &app.admin_token, &format!("/hosts/{old}")).await;
    assert_eq!(one["update_available"], true, "{one}");
    assert_eq!(one["latest_agent_version"], "1.2.0");
    let bad = get(&app, &app.admin_token, "/hosts?update_available=yes").await;
    let message = assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("update_available:"), "{message}");

    // The UI marks them: the host list's rows and the host page.
    let admin = login(&app, "admin", &app.admin_password).await;
    let list = admin.page(&app, "/hosts").send().await.unwrap();
    let list = list.text().await.unwrap();
    for (id, marked) in [
        (&old, true),
        (&rc, true),
        (&current, false),
        (&newer, false),
    ] {
        let start = list.find(&format!(r#"data-host-id="{id}""#)).unwrap();
        let row = &list[start..start + list[start..].find("</tr>").unwrap()];
        assert_eq!(row.contains("update available"), marked, "{row}");
    }
    let marked = |html: &str| html.contains(r#"title="Agent 1.2.0 is available""#);
    let page = admin
        .page(&app, &format!("/hosts/{old}"))
        .send()
        .await
        .unwrap();
    assert!(marked(&page.text().await.unwrap()));
    let page = admin
        .page(&app, &format!("/hosts/{current}"))
        .send()
        .await
        .unwrap();
    assert!(!marked(&page.text().await.unwrap()));
    app.stop().await;
}
