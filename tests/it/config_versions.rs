//! Issue 14 §3: config versions and acknowledgements, end to end. A
//! repository change bumps the host's config version and pushes
//! `config.update` with it; the agent's `ack` raises `acked_config_version`;
//! a reconnecting agent is sent the update only when it is behind (hello
//! or heartbeat); `"username": null` clears the user name on the server
//! and on the agent; a wrong type is a 400 naming the field.

use chrono::Utc;
use reqwest::{Method, StatusCode};
use restic_manager::agent::offline::sealed::{Kept, SealedSettings};
use restic_manager::protocol::{
    self, AgentToServer, ConfigUpdate, Envelope, Heartbeat, ServerToAgent,
};
use serde_json::{json, Value};

use crate::common::agent::{self as scripted, Enrolled, TestAgent};
use crate::common::api::{assert_error, call, login};
use crate::common::daemon::{self, InProcessAgent};
use crate::common::e2e;
use crate::common::fleet;
use crate::common::server::{spawn_app, TestApp};

/// `GET /hosts/{id}`'s config versions: (current, acked).
async fn versions(app: &TestApp, host_id: &str) -> (u64, u64) {
    let host = e2e::get(app, &format!("/hosts/{host_id}")).await;
    let version = |key: &str| {
        host[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in {host}"))
    };
    (version("config_version"), version("acked_config_version"))
}

/// Waits until the host's acked config version is `version`.
async fn acked(app: &TestApp, host_id: &str, version: u64) {
    e2e::wait_for(&format!("acked_config_version {version}"), async || {
        let (current, acked) = versions(app, host_id).await;
        (acked == version).then_some(current)
    })
    .await;
}

/// Sends `hello` with `last_known_config_version`, and returns the
/// greeting up to `schedule.set`: the `config.update` envelope, if any.
async fn greet(agent: &mut TestAgent, last_known: Option<u64>) -> Option<Envelope<ServerToAgent>> {
    agent
        .send(protocol::Hello {
            last_known_config_version: last_known,
            ..scripted::hello("cfg-01")
        })
        .await;
    let mut config = None;
    loop {
        let envelope = agent.expect_message().await;
        match envelope.message {
            ServerToAgent::ConfigUpdate(_) => config = Some(envelope),
            ServerToAgent::ScheduleSet(_) => return config,
            other => panic!("unexpected greeting frame {other:?}"),
        }
    }
}

fn config_of(envelope: &Envelope<ServerToAgent>) -> &ConfigUpdate {
    match &envelope.message {
        ServerToAgent::ConfigUpdate(update) => update,
        other => panic!("expected config.update, got {other:?}"),
    }
}

async fn ack(agent: &mut TestAgent, envelope: &Envelope<ServerToAgent>, accepted: bool) {
    agent
        .send(AgentToServer::from(protocol::Ack {
            correlation_id: envelope.id.clone(),
            accepted,
            reason: (!accepted).then(|| "not allowed here".to_owned()),
        }))
        .await;
}

async fn put_repository(app: &TestApp, host_id: &str, body: Value) -> (StatusCode, Value) {
    call(
        app,
        &app.admin_token,
        Method::PUT,
        &format!("/hosts/{host_id}/repository"),
        Some(body),
    )
    .await
}

/// The next `config.update` on the connection (other frames skipped).
async fn next_config(agent: &mut TestAgent) -> Envelope<ServerToAgent> {
    loop {
        let envelope = agent.expect_message().await;
        if matches!(envelope.message, ServerToAgent::ConfigUpdate(_)) {
            return envelope;
        }
    }
}

/// Scripted agent: a pushed change is acked and shown as applied; a
/// refusal leaves it pending; a reconnect with the current version gets
/// no `config.update`, an older one gets it, and a heartbeat behind the
/// current version gets it again; `"username": null` goes out as `null`.
#[actix_web::test]
async fn versions_acks_and_repushes_over_the_channel() {
    let app = spawn_app().await;
    let enrolled: Enrolled = scripted::enroll(&app, "cfg-01").await;
    let host = enrolled.host_id.clone();
    let (status, body) = put_repository(
        &app,
        &host,
        json!({"url": "/srv/cfg-repo", "password": "pw-1", "username": "alice", "credential": "cred-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (current, acked_before) = versions(&app, &host).await;
    assert!(current >= 2, "setting a repository bumps the version");
    assert_eq!(acked_before, 0);

    // A first connection (no version held) gets the update, with its version.
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    let first = greet(&mut agent, None).await.expect("config.update");
    let update = config_of(&first);
    assert_eq!(update.version, Some(current));
    assert_eq!(update.repo_username, Some(Some("alice".to_owned())));
    assert_eq!(update.repo_credential, Some(Some("cred-1".to_owned())));
    ack(&mut agent, &first, true).await;
    acked(&app, &host, current).await;

    // Clearing the user name: the live push carries an explicit null and a
    // new version; a refusal records nothing, an accept records it.
    let (status, body) = put_repository(
        &app,
        &host,
        json!({"url": "/srv/cfg-repo", "username": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], Value::Null, "{body}");
    let pushed = next_config(&mut agent).await;
    let update = config_of(&pushed);
    let cleared = current + 1;
    assert_eq!(update.version, Some(cleared));
    assert_eq!(
        update.repo_username,
        Some(None),
        "an explicit null clears it"
    );
    assert_eq!(update.repo_credential, Some(Some("cred-1".to_owned())));
    let wire = Envelope::new(pushed.message.clone()).encode();
    assert!(wire.contains(r#""repo_username":null"#), "{wire}");
    ack(&mut agent, &pushed, false).await;
    // The refusal is not recorded: the newer accept is the first change.
    ack(&mut agent, &pushed, true).await;
    acked(&app, &host, cleared).await;
    agent.close().await;

    // The agent holds the current version: the greeting leaves it out.
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    assert!(greet(&mut agent, Some(cleared)).await.is_none());
    // Its heartbeat says it is behind (say, it lost the settings): pushed again.
    agent
        .send(Heartbeat {
            sent_at: Utc::now(),
            active_job_ids: None,
            metrics: Default::default(),
            config_version: Some(current),
        })
        .await;
    let again = next_config(&mut agent).await;
    assert_eq!(config_of(&again).version, Some(cleared));
    agent.close().await;

    // An agent with an older version is sent the current settings.
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    let behind = greet(&mut agent, Some(current))
        .await
        .expect("config.update");
    assert_eq!(config_of(&behind).version, Some(cleared));
    assert_eq!(config_of(&behind).repo_username, Some(None));
    agent.close().await;
}

/// A wrong type and a cleared password are 400s naming the field; nothing
/// changes.
#[actix_web::test]
async fn bad_repository_input_names_the_field() {
    let app = spawn_app().await;
    let enrolled = scripted::enroll(&app, "cfg-02").await;
    let host = enrolled.host_id;
    let (status, body) =
        put_repository(&app, &host, json!({"url": "/srv/r", "password": "pw"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = versions(&app, &host).await;
    for (body, code, field) in [
        (
            json!({"url": "/srv/r", "username": 5}),
            "bad_request",
            "username: ",
        ),
        (
            json!({"url": "/srv/r", "credential": ["x"]}),
            "bad_request",
            "credential: ",
        ),
        (
            json!({"url": "/srv/r", "password": null}),
            "validation_failed",
            "password: ",
        ),
    ] {
        let got = put_repository(&app, &host, body.clone()).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, code);
        assert!(message.starts_with(field), "{body} → {message}");
    }
    assert_eq!(versions(&app, &host).await, before, "nothing was written");
}

/// The sealed settings of an in-process agent, once they hold `version`.
async fn sealed_at(sealed: &SealedSettings, version: u64) -> Kept {
    e2e::wait_for(
        &format!("the agent's settings of version {version}"),
        async || {
            sealed
                .load()
                .ok()
                .flatten()
                .filter(|kept| kept.config_version == Some(version))
        },
    )
    .await
}

/// Real agent: it acks what it applied (the host page's "applied"), keeps
/// the version with its sealed settings, and drops a user name and a
/// credential the operator cleared.
#[actix_web::test]
async fn real_agent_acks_and_drops_cleared_fields() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let config = daemon::enroll(&app, dir.path()).await;
    let host = config.host_id.clone();
    let sealed = SealedSettings::new(&config.state_dir, &host);
    let agent = InProcessAgent::start(config);
    let (status, body) = put_repository(
        &app,
        &host,
        json!({"url": "/srv/cfg-real", "password": "pw-real", "username": "bob", "credential": "cred-real"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (current, _) = versions(&app, &host).await;
    acked(&app, &host, current).await;
    let kept = sealed_at(&sealed, current).await;
    assert_eq!(kept.settings.username.as_deref(), Some("bob"));
    assert!(kept.settings.credential.is_some());

    let browser = login(&app, "admin", &app.admin_password).await;
    let (status, page) = fleet::page(&app, &browser, &format!("/hosts/{host}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("repository settings applied (version {current})")),
        "{page}"
    );

    let (status, body) = put_repository(
        &app,
        &host,
        json!({"url": "/srv/cfg-real", "username": null, "credential": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["credential_set"], false, "{body}");
    acked(&app, &host, current + 1).await;
    let kept = sealed_at(&sealed, current + 1).await;
    assert_eq!(
        kept.settings.username, None,
        "the agent dropped the user name"
    );
    assert!(kept.settings.credential.is_none(), "and the credential");
    assert!(kept.settings.password.is_some(), "the password stays");
    agent.stop().await;
}
