//! Docker discovery end to end (issue 13 §2) against a fake Docker Engine
//! API on a Unix socket (CI has no Docker; a real Docker run is a manual
//! check, README): the real agent declares `discovery`, its report reaches
//! `GET /hosts/{id}/discovery` and the host page without the secret value,
//! and a container event brings a new report. A malformed or oversized
//! `discovery.report` is a bad frame, and the session goes on.

use reqwest::StatusCode;
use restic_manager::protocol::{self, DiscoveredContainer, DiscoveryReport, EnvHint};
use serde_json::Value;

use crate::common::agent::{self as scripted, TestAgent};
use crate::common::api::{self, create_host};
use crate::common::daemon::{self, InProcessAgent};
use crate::common::e2e::{get, wait_for, wait_online};
use crate::common::fake_docker::{FakeContainer, FakeDocker};
use crate::common::fleet;
use crate::common::server::{spawn_app, TestApp};

const SECRET: &str = "hunter2-never-shown";

fn shop_db() -> FakeContainer {
    let mut db = FakeContainer::new(
        "4f1c0000aaaa",
        "shop-db",
        "postgres:16",
        &[
            "POSTGRES_DB=shop",
            "POSTGRES_USER=app",
            &format!("POSTGRES_PASSWORD={SECRET}"),
            &format!("SHOP_API_TOKEN={SECRET}"),
        ],
    );
    db.ports = vec![(5432, Some(15432))];
    db
}

async fn discovery(app: &TestApp, host: &str) -> Value {
    get(app, &format!("/hosts/{host}/discovery")).await
}

fn names(report: &Value) -> Vec<String> {
    report["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The real agent against the fake Engine: `discovery` in its hello, the
/// report on connect with the database detected, the suggested dump and
/// no secret value anywhere (API, host page); a `start` event for a new
/// container brings a second report with it.
#[actix_web::test]
async fn agent_reports_containers_and_follows_events() {
    let docker = FakeDocker::start(vec![
        shop_db(),
        FakeContainer::new("9a0b0000bbbb", "web", "nginx:1.27", &["NGINX_HOST=shop"]),
    ]);
    let app = spawn_app().await;
    let work = tempfile::tempdir().unwrap();
    let mut config = daemon::enroll(&app, work.path()).await;
    config.docker_host = Some(docker.host());
    let host = config.host_id.clone();

    let before = discovery(&app, &host).await;
    assert_eq!(before["received_at"], Value::Null, "{before}");
    assert_eq!(before["containers"], serde_json::json!([]));

    let agent = InProcessAgent::start(config);
    wait_online(&app, &host).await;

    let report = wait_for("the first discovery report", async || {
        let report = discovery(&app, &host).await;
        (!report["received_at"].is_null()).then_some(report)
    })
    .await;
    assert_eq!(names(&report), ["shop-db", "web"], "{report}");
    let db = &report["containers"][0];
    assert_eq!(db["image"], "postgres:16");
    assert_eq!(db["state"], "running");
    assert_eq!(db["database"], "postgres");
    assert_eq!(db["networks"], serde_json::json!(["bridge"]));
    assert_eq!(db["ports"][0]["public_port"], 15432);
    assert_eq!(
        db["suggested_dump"],
        serde_json::json!({"driver": "postgres", "container": "shop-db", "database": "shop"})
    );
    let env: Vec<&Value> = db["env"].as_array().unwrap().iter().collect();
    assert!(
        env.iter()
            .any(|e| e["name"] == "POSTGRES_PASSWORD" && e.get("value").is_none()),
        "{db}"
    );
    assert!(
        env.iter()
            .any(|e| e["name"] == "SHOP_API_TOKEN" && e.get("value").is_none()),
        "{db}"
    );
    assert!(!report.to_string().contains(SECRET), "{report}");
    assert_eq!(report["containers"][1]["database"], Value::Null);
    assert_eq!(report["containers"][1]["suggested_dump"], Value::Null);
    let doc = crate::api_openapi::document(&app).await;
    crate::api_openapi::conforms(&doc, "Discovery", &before);
    crate::api_openapi::conforms(&doc, "Discovery", &report);

    let id = host.clone();
    let row = scripted::db(&app, move |c| restic_manager::store::hosts::get(c, &id))
        .await
        .unwrap();
    assert!(
        row.has_capability(protocol::CAPABILITY_DISCOVERY),
        "the hello declared discovery: {:?}",
        row.capabilities
    );

    // The host page lists the database with a pre-filled dump group form.
    let browser = api::login(&app, "admin", &app.admin_password).await;
    let (status, html) = fleet::page(&app, &browser, &format!("/hosts/{host}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Discovered databases"), "{html}");
    assert!(html.contains(r#"data-container="shop-db""#), "{html}");
    assert!(html.contains(r#"data-form="dump-group""#));
    assert!(
        html.contains(r#"name="database" type="text" value="shop""#),
        "{html}"
    );
    assert!(
        html.contains(r#"name="container" type="text" value="shop-db""#),
        "{html}"
    );
    assert!(
        html.contains(r#"<option value="postgres" selected>"#),
        "{html}"
    );
    assert!(!html.contains(SECRET));

    // A new container and its start event: a second report.
    wait_for("the agent to follow /events", async || {
        (docker.event_listeners() > 0).then_some(())
    })
    .await;
    let first_received = report["received_at"].clone();
    docker.set(vec![
        shop_db(),
        FakeContainer::new("9a0b0000bbbb", "web", "nginx:1.27", &[]),
        FakeContainer::new("c3c30000cccc", "cache", "redis:7", &[]),
    ]);
    docker.event("start", "c3c30000cccc");
    let report = wait_for("the report after the event", async || {
        let report = discovery(&app, &host).await;
        (names(&report).len() == 3).then_some(report)
    })
    .await;
    assert_eq!(names(&report), ["cache", "shop-db", "web"]);
    assert_eq!(report["containers"][0]["database"], "redis");
    assert_ne!(report["received_at"], first_received);
    assert!(!report.to_string().contains(SECRET));

    agent.stop().await;
}

/// The route: 404 for an unknown host, viewer access, an empty answer
/// until a report. A malformed report and one over the container bound
/// are bad frames (not stored, the session stays); a secret value a
/// faulty agent sent is not stored.
#[actix_web::test]
async fn bad_reports_are_bad_frames_and_secrets_are_dropped() {
    let app = spawn_app().await;
    let (status, body) = api::get(&app, &app.admin_token, "/hosts/no-such-host/discovery").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let other = create_host(&app, "quiet-1").await;
    let quiet = discovery(&app, &other).await;
    assert_eq!(quiet["received_at"], Value::Null);

    // An agent that did not declare `discovery`: its report is a bad
    // frame and nothing is stored.
    let enrolled = scripted::enroll(&app, "disc-1").await;
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    agent.hello("disc-1").await;
    agent.send(DiscoveryReport { containers: vec![] }).await;
    let frame = agent.expect_error().await;
    assert_eq!(frame.code, protocol::ERROR_BAD_FRAME);
    assert!(frame.detail.contains("discovery capability"), "{frame:?}");
    agent.close().await;

    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    let mut hello = scripted::hello("disc-1");
    hello
        .capabilities
        .get_or_insert_with(Vec::new)
        .push(protocol::CAPABILITY_DISCOVERY.to_owned());
    agent.send(hello).await;
    crate::health::expect_config_push(&mut agent).await;

    agent
        .send_text(r#"{"type":"discovery.report","id":"bad1","data":{"containers":[{"id":"a","name":"n"}]}}"#)
        .await;
    let frame = agent.expect_error().await;
    assert_eq!(frame.code, protocol::ERROR_BAD_FRAME);
    assert!(frame.detail.contains("containers[0]"), "{frame:?}");

    let container = |i: usize| DiscoveredContainer {
        id: format!("id{i}"),
        name: format!("c{i}"),
        image: "nginx".to_owned(),
        state: "running".to_owned(),
        networks: vec![],
        ports: vec![],
        database: None,
        env: vec![],
    };
    let too_many = DiscoveryReport {
        containers: (0..=protocol::MAX_DISCOVERED_CONTAINERS)
            .map(container)
            .collect(),
    };
    agent.send(too_many).await;
    let frame = agent.expect_error().await;
    assert_eq!(frame.code, protocol::ERROR_BAD_FRAME);
    assert!(frame.detail.starts_with("containers: 1001"), "{frame:?}");
    assert_eq!(
        discovery(&app, &enrolled.host_id).await["received_at"],
        Value::Null
    );

    let mut leaky = container(1);
    leaky.env = vec![EnvHint {
        name: "DB_PASSWORD".to_owned(),
        value: Some(SECRET.to_owned()),
    }];
    agent
        .send(DiscoveryReport {
            containers: vec![leaky],
        })
        .await;
    let report = wait_for("the report stored", async || {
        let report = discovery(&app, &enrolled.host_id).await;
        (!report["received_at"].is_null()).then_some(report)
    })
    .await;
    assert_eq!(names(&report), ["c1"]);
    assert_eq!(report["containers"][0]["env"][0]["name"], "DB_PASSWORD");
    assert!(!report.to_string().contains(SECRET), "{report}");
    agent.close().await;
}
