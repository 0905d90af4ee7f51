//! Issue 14 §1–2: service health checks and host metrics. The API's
//! validation and round trip; `health.set` only to agents that declared
//! `health`; `health.report` stored and exported; heartbeat metrics as a
//! time series (one point per minute, folded into hours, dropped after 30
//! days) on both backends; and end to end, a real agent probing a local
//! HTTP server that goes down and comes back, seen on `GET /health`, the
//! host page and `/metrics` within one interval.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use restic_manager::protocol::{
    self, HealthCheckResult, HealthReport, Heartbeat, ServerToAgent, CAPABILITY_HEALTH,
};
use restic_manager::store::health::{self, HealthResultRow};
use restic_manager::store::host_metrics::{self, MetricPoint, HOUR, MINUTE};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::agent::{self as scripted, TestAgent};
use crate::common::api::{self, assert_error, call, metrics_text};
use crate::common::daemon::{self, InProcessAgent};
use crate::common::e2e;
use crate::common::server::{spawn_app, spawn_app_with, TestApp};
use crate::store::{add_host, for_each_backend};

pub(crate) fn web_check(target: &str) -> Value {
    json!({"name": "web", "type": "http", "target": target, "interval_seconds": 30, "timeout_seconds": 5})
}

pub(crate) async fn put_checks(app: &TestApp, host_id: &str, body: Value) -> (StatusCode, Value) {
    call(
        app,
        &app.admin_token,
        Method::PUT,
        &format!("/hosts/{host_id}/health-checks"),
        Some(body),
    )
    .await
}

/// GET/PUT health-checks: an empty list at first, a valid list stored and
/// answered as given, every broken field a 400 naming it, an unknown host
/// a 404, a viewer refused.
#[actix_web::test]
async fn health_checks_round_trip_and_refuse_bad_fields() {
    let app = spawn_app().await;
    // Enrolled, not yet connected: its agent's capabilities are not known.
    let host_id = scripted::enroll(&app, "web-1").await.host_id;
    let path = format!("/hosts/{host_id}/health-checks");
    assert_eq!(api::get(&app, &app.admin_token, &path).await.1, json!([]));

    let checks = json!([
        {"name": "web", "type": "http", "target": "https://127.0.0.1:8443/health", "interval_seconds": 30, "timeout_seconds": 5, "expect_status": 204},
        {"name": "db", "type": "tcp", "target": "db.internal:5432", "interval_seconds": 10, "timeout_seconds": 3},
    ]);
    let (status, body) = put_checks(&app, &host_id, checks.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, checks);
    assert_eq!(api::get(&app, &app.admin_token, &path).await.1, checks);

    let cases = [
        (
            json!([{"name": "web", "type": "http", "target": "http://x/", "interval_seconds": 5, "timeout_seconds": 1}]),
            "[0].interval_seconds",
        ),
        (
            json!([web_check("http://x/"), web_check("http://y/")]),
            "[1].name",
        ),
        (
            json!([{"name": "db", "type": "tcp", "target": "db.internal", "interval_seconds": 10, "timeout_seconds": 3}]),
            "[0].target",
        ),
        (
            json!([{"name": "web", "type": "icmp", "target": "x", "interval_seconds": 10, "timeout_seconds": 3}]),
            "[0].type",
        ),
        (
            json!([{"name": "web", "type": "http", "target": "http://x/", "interval_seconds": 10, "timeout_seconds": 10}]),
            "[0].timeout_seconds",
        ),
        (
            json!([{"name": "web", "type": "tcp", "target": "x:1", "interval_seconds": 10, "timeout_seconds": 3, "expect_status": 200}]),
            "[0].expect_status",
        ),
        (
            json!([{"name": "web", "type": "http", "target": "http://x/", "interval_seconds": 10, "timeout_seconds": 3, "every": 3}]),
            "[0].every",
        ),
        (
            json!([{"type": "http", "target": "http://x/", "interval_seconds": 10, "timeout_seconds": 3}]),
            "name",
        ),
    ];
    for (body, field) in cases {
        let got = put_checks(&app, &host_id, body.clone()).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.contains(field), "{body} → {message}");
    }
    // Nothing of the refused bodies was stored.
    assert_eq!(api::get(&app, &app.admin_token, &path).await.1, checks);
    let got = put_checks(&app, &host_id, json!({"name": "web"})).await;
    assert_eq!(got.0, StatusCode::BAD_REQUEST, "{}", got.1);

    let got = put_checks(&app, "no-such-host", json!([])).await;
    assert_eq!(got.0, StatusCode::NOT_FOUND, "{}", got.1);
    let viewer = api::user_with_token(
        &app,
        "viewer",
        restic_manager::auth::Role::Viewer,
        "viewer-password-1",
    )
    .await;
    let got = call(&app, &viewer, Method::PUT, &path, Some(json!([]))).await;
    assert_eq!(got.0, StatusCode::FORBIDDEN, "{}", got.1);

    // An empty list removes every check.
    assert_eq!(put_checks(&app, &host_id, json!([])).await.1, json!([]));
    assert_eq!(api::get(&app, &app.admin_token, &path).await.1, json!([]));
}

/// The next frame, which must be `health.set`.
pub(crate) async fn expect_health_set(agent: &mut TestAgent) -> protocol::HealthSet {
    match agent.expect_message().await.message {
        ServerToAgent::HealthSet(set) => set,
        other => panic!("expected health.set, got {other:?}"),
    }
}

/// The push after a configuration change: `schedule.set`, after a
/// `config.update` when the change also reached the host's repository
/// settings (a health-check change alone sends none).
pub(crate) async fn expect_config_push(agent: &mut TestAgent) {
    let mut message = agent.expect_message().await.message;
    if protocol::WireMessage::type_name(&message) == "config.update" {
        message = agent.expect_message().await.message;
    }
    assert_eq!(
        protocol::WireMessage::type_name(&message),
        "schedule.set",
        "{message:?}"
    );
}

pub(crate) fn result(name: &str, ok: bool, latency_ms: u64) -> HealthCheckResult {
    HealthCheckResult {
        name: name.to_owned(),
        ok,
        latency_ms: Some(latency_ms),
        status_code: Some(if ok { 200 } else { 503 }),
        error: (!ok).then(|| "HTTP status 503, expected 200-399".to_owned()),
        checked_at: chrono::Utc::now(),
    }
}

/// An agent without the `health` capability is never sent `health.set`;
/// one with it gets the list after `hello` and on every change, and its
/// `health.report` results (of configured checks only) reach
/// `GET /health` and `/metrics`.
#[actix_web::test]
async fn health_set_goes_to_capable_agents_and_reports_are_stored() {
    let app = spawn_app().await;

    // An old agent: no health.set, and checks it would never run are
    // refused naming the capability (nothing stored, nothing pushed).
    let old = scripted::enroll(&app, "old-1").await;
    let mut agent = TestAgent::connect(&app, &old).await.unwrap();
    agent.hello("old-1").await;
    let (status, body) = put_checks(
        &app,
        &old.host_id,
        json!([web_check("http://127.0.0.1:1/")]),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "agent_lacks_capability", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("health"),
        "{body}"
    );
    let (status, stored) = put_checks(&app, &old.host_id, json!([])).await;
    assert_eq!((status, stored), (StatusCode::OK, json!([])));
    expect_config_push(&mut agent).await;
    agent
        .send_text(r#"{"type":"no.such.type","id":"probe","data":{}}"#)
        .await;
    let frame = agent.expect_error().await;
    assert_eq!(
        frame.code,
        protocol::ERROR_UNKNOWN_TYPE,
        "health.set came before: {frame:?}"
    );
    agent.close().await;

    // A current agent.
    let new = scripted::enroll(&app, "new-1").await;
    let mut agent = TestAgent::connect(&app, &new).await.unwrap();
    let mut hello = scripted::hello("new-1");
    hello
        .capabilities
        .get_or_insert_with(Vec::new)
        .push(CAPABILITY_HEALTH.to_owned());
    agent.send(hello).await;
    expect_config_push(&mut agent).await;
    assert_eq!(expect_health_set(&mut agent).await.checks, vec![]);
    let checks = json!([web_check("http://127.0.0.1:1/"), {"name": "db", "type": "tcp", "target": "127.0.0.1:1", "interval_seconds": 10, "timeout_seconds": 2}]);
    put_checks(&app, &new.host_id, checks).await;
    expect_config_push(&mut agent).await;
    let set = expect_health_set(&mut agent).await;
    let names: Vec<&str> = set.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web", "db"]);

    agent
        .send(HealthReport {
            results: vec![
                result("web", true, 12),
                result("db", false, 3),
                result("ghost", false, 1),
            ],
        })
        .await;
    let path = format!("/hosts/{}/health", new.host_id);
    let items = e2e::wait_for("both results stored", async || {
        let body = e2e::get(&app, &path).await;
        (body["items"].as_array()?.len() == 2).then_some(body["items"].clone())
    })
    .await;
    assert_eq!(items[0]["name"], "db");
    assert_eq!(items[0]["ok"], false);
    assert_eq!(items[0]["status_code"], 503);
    assert_eq!(items[0]["error"], "HTTP status 503, expected 200-399");
    assert_eq!(items[1]["name"], "web");
    assert_eq!(items[1]["ok"], true);
    assert_eq!(items[1]["latency_ms"], 12);
    assert!(items[1]["checked_at"].as_str().unwrap().ends_with('Z'));
    let text = metrics_text(&app).await;
    let up = |check: &str, v: u8| {
        format!(
            "restic_manager_health_check_up{{host_id=\"{}\",check=\"{check}\"}} {v}",
            new.host_id
        )
    };
    assert!(text.contains(&up("web", 1)), "{text}");
    assert!(text.contains(&up("db", 0)), "{text}");
    assert!(!text.contains("check=\"ghost\""), "{text}");
    assert!(
        text.contains(&format!(
            "restic_manager_health_check_latency_seconds{{host_id=\"{}\",check=\"web\"}} 0.012",
            new.host_id
        )),
        "{text}"
    );

    // db comes back.
    agent
        .send(HealthReport {
            results: vec![result("db", true, 2)],
        })
        .await;
    e2e::wait_for("db up", async || {
        let body = e2e::get(&app, &path).await;
        (body["items"][0]["ok"] == true).then_some(())
    })
    .await;
    assert!(metrics_text(&app).await.contains(&up("db", 1)));

    // Removing a check drops its result and its gauge.
    put_checks(
        &app,
        &new.host_id,
        json!([web_check("http://127.0.0.1:1/")]),
    )
    .await;
    expect_config_push(&mut agent).await;
    assert_eq!(expect_health_set(&mut agent).await.checks.len(), 1);
    let body = e2e::get(&app, &path).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1, "{body}");
    assert!(!metrics_text(&app).await.contains("check=\"db\""));
    agent.close().await;
}

/// Heartbeat metrics: the gauges on `/metrics` at once, one stored point
/// per minute, served by `GET /metrics` (with `since`, a bad `since` a 400
/// naming it), the hourly points of older days included.
#[actix_web::test]
async fn heartbeat_metrics_are_stored_and_served() {
    let app = spawn_app().await;
    let host = scripted::enroll(&app, "m-1").await;
    let mut agent = TestAgent::connect(&app, &host).await.unwrap();
    agent.hello("m-1").await;
    let metrics = json!({"load1": 0.75, "mem_used_bytes": 1000, "mem_total_bytes": 4000, "disk_free_bytes": 5000, "source_disk_free_bytes": {"docs": 6000}});
    for _ in 0..3 {
        agent
            .send(Heartbeat {
                sent_at: chrono::Utc::now(),
                active_job_ids: None,
                metrics: metrics.as_object().unwrap().clone(),
                config_version: None,
            })
            .await;
    }
    let path = format!("/hosts/{}/metrics", host.host_id);
    let items = e2e::wait_for("a metric point", async || {
        let body = e2e::get(&app, &path).await;
        let items = body["items"].as_array()?.clone();
        (!items.is_empty()).then_some(items)
    })
    .await;
    // Three heartbeats within at most two minutes: one point per minute.
    assert!(items.len() <= 2, "{items:?}");
    let point = &items[0];
    assert_eq!(point["resolution_seconds"], 60);
    assert_eq!(point["load1"], 0.75);
    assert_eq!(point["mem_used_bytes"], 1000);
    assert_eq!(point["mem_total_bytes"], 4000);
    assert_eq!(point["disk_free_bytes"], 5000);
    assert_eq!(point["source_disk_free_bytes"], json!({"docs": 6000}));
    let text = metrics_text(&app).await;
    assert!(
        text.contains(&format!(
            "restic_manager_host_disk_free_bytes{{host_id=\"{}\"}} 5000",
            host.host_id
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "restic_manager_host_load1{{host_id=\"{}\"}} 0.75",
            host.host_id
        )),
        "{text}"
    );

    // Older points (hourly) come first; `since` limits them.
    let id = host.host_id.clone();
    let now = restic_manager::store::now_ms();
    let hour_ago_days = |days: i64| now - days * 86_400_000 - (now % 3_600_000);
    let old: Vec<MetricPoint> = [3, 2]
        .into_iter()
        .map(|days| MetricPoint {
            host_id: id.clone(),
            resolution: HOUR,
            at: hour_ago_days(days),
            load1: Some(1.0),
            mem_used_bytes: None,
            mem_total_bytes: None,
            disk_free_bytes: Some(days),
            source_disk_free: None,
        })
        .collect();
    scripted::db(&app, move |c| host_metrics::insert_batch(c, &old)).await;
    let since = chrono::DateTime::from_timestamp_millis(hour_ago_days(4))
        .unwrap()
        .to_rfc3339();
    let body = e2e::get(&app, &format!("{path}?since={}", since.replace('+', "%2B"))).await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items[0]["resolution_seconds"], 3600);
    assert_eq!(items[0]["disk_free_bytes"], 3);
    assert_eq!(items[1]["disk_free_bytes"], 2);
    assert_eq!(items[1]["mem_used_bytes"], Value::Null);
    let body = e2e::get(&app, &path).await;
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["resolution_seconds"] == 60),
        "default: the last 24 hours"
    );
    let got = api::get(&app, &app.admin_token, &format!("{path}?since=yesterday")).await;
    let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("since:"), "{message}");
    agent.close().await;
}

/// The store: a result of a check the host does not have is not kept;
/// the history keeps the newest 500 per check; an older result arriving
/// late does not replace the latest; the down count.
#[test]
fn store_keeps_latest_result_and_bounded_history() {
    for_each_backend("health_results", |pool, _| {
        let mut c = pool.get().unwrap();
        let host = add_host(&mut c, "h1").id.into_string();
        let checks: Vec<protocol::HealthCheckSpec> =
            serde_json::from_value(json!([web_check("http://x/")])).unwrap();
        health::set_checks(&mut c, &host, &checks, 0).unwrap();
        let row = |ok: bool, at: i64| HealthResultRow {
            host_id: host.clone(),
            name: "web".to_owned(),
            ok,
            latency_ms: Some(1),
            status_code: None,
            error: None,
            checked_at: at,
        };
        let ghost = HealthResultRow {
            name: "ghost".to_owned(),
            ..row(true, 1)
        };
        assert!(!health::record_result(&mut c, &ghost, &checks).unwrap());
        for at in 1..=health::HISTORY_KEEP + 5 {
            assert!(health::record_result(&mut c, &row(at % 2 == 0, at), &checks).unwrap());
        }
        let history = health::history(&mut c, &host, "web", 1000).unwrap();
        assert_eq!(history.len() as i64, health::HISTORY_KEEP);
        assert_eq!(history[0].0, health::HISTORY_KEEP + 5);
        // A late, older result: stored in the history, not as the latest.
        health::record_result(&mut c, &row(true, 0), &checks).unwrap();
        let latest = health::latest_for_host(&mut c, &host).unwrap();
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].checked_at, health::HISTORY_KEEP + 5);
        assert!(!latest[0].ok);
        assert_eq!(health::down_count(&mut c).unwrap(), 1);
        health::set_checks(&mut c, &host, &[], 1).unwrap();
        assert!(health::latest_for_host(&mut c, &host).unwrap().is_empty());
        assert_eq!(health::down_count(&mut c).unwrap(), 0);
    });
}

/// The writer's metric points reach the database on both backends (on
/// PostgreSQL by the thread beside the writer): a full batch at once, and
/// the rest when the writer stops, none lost.
#[test]
fn metric_points_are_written_beside_the_writer_and_kept_at_stop() {
    use restic_manager::actors::persistence::{
        Persistence, RecordHostMetrics, METRICS_FLUSH_POINTS,
    };
    use restic_manager::metrics::Metrics;

    for_each_backend("metric_points_written", |pool, _| {
        let host = add_host(&mut pool.get().unwrap(), "points")
            .id
            .into_string();
        let count = |pool: &restic_manager::store::Pool| {
            host_metrics::list_for_host(&mut pool.get().unwrap(), &host, 0, 10_000)
                .unwrap()
                .len()
        };
        // The writer writes a batch when it is full; 500 more points stay
        // buffered until it stops.
        let full = METRICS_FLUSH_POINTS;
        let total = full + 500;
        actix_web::rt::System::new().block_on(async {
            let writer = Persistence::start(pool.clone(), std::sync::Arc::new(Metrics::new()));
            for i in 0..total {
                writer.do_send(RecordHostMetrics(MetricPoint {
                    host_id: host.clone(),
                    resolution: MINUTE,
                    at: i as i64 * 60_000,
                    load1: Some(0.5),
                    mem_used_bytes: None,
                    mem_total_bytes: None,
                    disk_free_bytes: Some(i as i64),
                    source_disk_free: None,
                }));
            }
            e2e::wait_for("a full batch of points", async || {
                (count(pool) >= full).then_some(())
            })
            .await;
            // The last address gone, the writer stops and flushes.
            drop(writer);
            e2e::wait_for("the points buffered at the stop", async || {
                (count(pool) == total).then_some(())
            })
            .await;
        });
    });
}

/// Retention of host metrics: minute points older than 24 hours fold into
/// one hourly point per host and hour (batch by batch), hourly points
/// older than 30 days go, recent minute points stay.
#[test]
fn metrics_downsampling_folds_and_drops() {
    for_each_backend("host_metrics_retention", |pool, _| {
        let mut c = pool.get().unwrap();
        let now: i64 = 1_750_000_000_000 - 1_750_000_000_000 % 3_600_000 + 1_800_000;
        let hosts: Vec<String> = (0..3)
            .map(|i| add_host(&mut c, &format!("m{i}")).id.into_string())
            .collect();
        let minute = |host: &str, at: i64, load: f64, free: i64| MetricPoint {
            host_id: host.to_owned(),
            resolution: MINUTE,
            at,
            load1: Some(load),
            mem_used_bytes: Some(100),
            mem_total_bytes: Some(1000),
            disk_free_bytes: Some(free),
            source_disk_free: None,
        };
        let old_hour = now - 2 * 86_400_000 - now % 3_600_000;
        let mut points = Vec::new();
        for host in &hosts {
            points.push(minute(host, old_hour, 1.0, 50));
            points.push(minute(host, old_hour + 60_000, 3.0, 40));
            points.push(minute(host, old_hour + 3_600_000, 5.0, 30));
            points.push(minute(host, now - 60_000, 0.5, 10));
        }
        points.push(MetricPoint {
            resolution: HOUR,
            at: now - 31 * 86_400_000,
            ..minute(&hosts[0], 0, 9.0, 1)
        });
        assert_eq!(
            host_metrics::insert_batch(&mut c, &points).unwrap(),
            points.len()
        );
        // Inserting the same minute again keeps the first.
        assert_eq!(host_metrics::insert_batch(&mut c, &points[..1]).unwrap(), 0);

        let mut rounds = 0;
        loop {
            let outcome = host_metrics::downsample_batch(&mut c, now, 2).unwrap();
            rounds += 1;
            if outcome.done {
                break;
            }
            assert!(rounds < 20, "downsampling does not end");
        }
        // 1 drop + 2 hours × 2 batches (2 hosts, then 1) + the last look.
        assert_eq!(rounds, 6);
        for host in &hosts {
            let all = host_metrics::list_for_host(&mut c, host, 0, 100).unwrap();
            let shape: Vec<(i32, i64)> = all.iter().map(|p| (p.resolution, p.at)).collect();
            assert_eq!(
                shape,
                [
                    (HOUR, old_hour),
                    (HOUR, old_hour + 3_600_000),
                    (MINUTE, now - 60_000)
                ],
                "{host}"
            );
            assert_eq!(all[0].load1, Some(2.0));
            assert_eq!(all[0].disk_free_bytes, Some(40));
            assert_eq!(all[0].mem_total_bytes, Some(1000));
            assert_eq!(all[1].load1, Some(5.0));
        }
    });
}

/// A tiny HTTP server for the health check: answers `GET` with 200 while
/// it runs; [`HttpTarget::stop`] closes its port, [`HttpTarget::start`]
/// opens the same port again.
struct HttpTarget {
    addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl HttpTarget {
    async fn bind(addr: SocketAddr) -> HttpTarget {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    // The request is not read beyond its first bytes: any GET is answered.
                    let _ = stream.read(&mut buf).await;
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        HttpTarget {
            addr,
            task: Some(task),
        }
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for HttpTarget {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The check's row on the host page: `data-ok` of `data-check="web"`.
async fn page_state(app: &TestApp, browser: &api::Browser, host_id: &str) -> String {
    let html = browser
        .page(app, &format!("/hosts/{host_id}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = html
        .split("data-check=\"web\" data-ok=\"")
        .nth(1)
        .unwrap_or("missing\"");
    row.split('"').next().unwrap_or_default().to_owned()
}

/// End to end: a real agent probes a local HTTP server every second; the
/// server goes away and comes back, and each change shows on
/// `GET /health`, on the host page and on `/metrics` within one interval
/// (plus the time to carry it), with a `health.down` condition while down.
#[actix_web::test]
async fn real_agent_sees_a_service_go_down_and_up() {
    let app = spawn_app_with(|config| config.health_min_interval_seconds = 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = daemon::enroll(&app, dir.path()).await;
    let host_id = config.host_id.clone();
    let agent = InProcessAgent::start(config);
    e2e::wait_for("the agent online", async || {
        let host = e2e::get(&app, &format!("/hosts/{host_id}")).await;
        (host["status"] == "online").then_some(())
    })
    .await;

    let mut target = HttpTarget::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let url = format!("http://{}/health", target.addr);
    let (status, body) = put_checks(
        &app,
        &host_id,
        json!([{"name": "web", "type": "http", "target": url, "interval_seconds": 1, "timeout_seconds": 1}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let browser = api::login(&app, "admin", &app.admin_password).await;
    let health_path = format!("/hosts/{host_id}/health");
    let up_sample = |v: u8| {
        format!("restic_manager_health_check_up{{host_id=\"{host_id}\",check=\"web\"}} {v}")
    };
    let state = async |want_ok: bool| {
        let body = e2e::get(&app, &health_path).await;
        (body["items"][0]["ok"] == want_ok).then_some(body["items"][0].clone())
    };

    let up = e2e::wait_for("web up", async || state(true).await).await;
    assert_eq!(up["status_code"], 200);
    assert_eq!(page_state(&app, &browser, &host_id).await, "true");
    assert!(metrics_text(&app).await.contains(&up_sample(1)));

    // Down: within one interval (1 s) plus carrying it (debug build, a
    // busy machine: 5 s of slack).
    let within = Duration::from_secs(1 + 5);
    target.stop();
    let started = Instant::now();
    let down = e2e::wait_for_within("web down", within, async || state(false).await).await;
    assert!(
        down["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{down}"
    );
    assert!(started.elapsed() <= within);
    assert_eq!(page_state(&app, &browser, &host_id).await, "false");
    assert!(metrics_text(&app).await.contains(&up_sample(0)));
    let dashboard = browser
        .page(&app, "/")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dashboard.contains(r#"id="services-down">1<"#),
        "dashboard counts the service down"
    );
    let condition = format!("health.down|{host_id}|web");
    let active = scripted::db(&app, move |c| {
        use diesel::prelude::*;
        use restic_manager::store::schema::notification_conditions as nc;
        nc::table.find(condition).count().get_result::<i64>(c)
    })
    .await;
    assert_eq!(active, 1, "a health.down condition is active");

    // Up again on the same port.
    let target = HttpTarget::bind(target.addr).await;
    let started = Instant::now();
    e2e::wait_for_within("web up again", within, async || state(true).await).await;
    assert!(started.elapsed() <= within);
    assert_eq!(page_state(&app, &browser, &host_id).await, "true");
    assert!(metrics_text(&app).await.contains(&up_sample(1)));
    drop(target);
    agent.stop().await;
}
