#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! `/metrics` end to end: a scripted agent enrols, connects and runs a
//! backup; the scrape (unauthenticated) parses as the OpenMetrics text
//! format and shows the host online, the session, the messages in and out,
//! the job by kind and status, its duration, the last successful backup of
//! its group and the persistence batch — and no hostname.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::agent::{enroll, eventually, TestAgent};
use crate::common::api::{call, metrics_text};
use crate::common::server::{client, spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use restic_manager::ids::{HostId, JobId};
use restic_manager::protocol;
use serde_json::json;

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses OpenMetrics text, failing on any line that is not a HELP or TYPE
/// comment or a `name{labels} value` sample, on a sample whose family has
/// no TYPE before it (a counter's samples end in `_total`, a histogram's in
/// `_bucket`, `_sum` or `_count`), and on text that does not end with the
/// one `# EOF` line.
fn parse(text: &str) -> Vec<Sample> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut samples = Vec::new();
    let body = text
        .strip_suffix("# EOF\n")
        .unwrap_or_else(|| panic!("no closing # EOF: {text:?}"));
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(valid_name(name) && !help.is_empty(), "bad HELP: {line}");
            helped.insert(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(valid_name(name), "bad TYPE: {line}");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "bad TYPE: {line}"
            );
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "bad line: {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                parse_labels(rest.strip_suffix('}').expect("labels end with }")),
            ),
            None => (series, BTreeMap::new()),
        };
        assert!(valid_name(name), "bad name: {line}");
        let family = [
            ("_total", "counter"),
            ("_bucket", "histogram"),
            ("_sum", "histogram"),
            ("_count", "histogram"),
        ]
        .iter()
        .find_map(|(suffix, kind)| {
            name.strip_suffix(suffix)
                .filter(|f| typed.get(*f).map(String::as_str) == Some(*kind))
        })
        .unwrap_or(name);
        assert!(
            typed.get(family).map(String::as_str) != Some("counter") || family != name,
            "counter sample without _total: {line}"
        );
        assert!(typed.contains_key(family), "no TYPE before {line}");
        assert!(helped.contains(family), "no HELP for {line}");
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `a="x",b="y\"z"` → {a: x, b: y"z}.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
        assert!(valid_name(key), "bad label name {key}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("closing quote");
            match c {
                '\\' => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                other => value.push(other),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    labels
}

/// The value of the sample `name` whose labels include `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {want:?}"))
        .2
}

async fn scrape(app: &TestApp) -> (String, Vec<Sample>) {
    let resp = client().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    let samples = parse(&text);
    (text, samples)
}

/// After an agent connected and ran a backup, the scrape shows it all in valid exposition format; after it leaves, the gauges drop.
#[actix_web::test]
async fn scrape_after_an_agent_ran_a_job() {
    let app = spawn_app().await;
    let (_, before) = scrape(&app).await;
    assert_eq!(value(&before, "restic_manager_hosts_online", &[]), 0.0);
    assert_eq!(
        value(&before, "restic_manager_websocket_sessions", &[]),
        0.0
    );

    let hostname = "metrics-secret-hostname";
    let enrolled = enroll(&app, hostname).await;
    let mut agent = TestAgent::connect(&app, &enrolled).await.expect("connect");
    agent.hello(hostname).await;
    let host = enrolled.host_id.clone();
    let t = &app.admin_token;
    let group = call(
        &app,
        t,
        Method::POST,
        &format!("/hosts/{host}/source-groups"),
        Some(json!({"name": "etc", "includes": ["/etc"]})),
    )
    .await;
    assert_eq!(group.0, StatusCode::CREATED, "{}", group.1);
    let job = call(
        &app,
        t,
        Method::POST,
        &format!("/hosts/{host}/jobs"),
        Some(json!({"kind": "backup", "source_group": "etc"})),
    )
    .await;
    assert_eq!(job.0, StatusCode::CREATED, "{}", job.1);
    let run = agent.expect_command_run().await;
    agent
        .run_job(&run, 5, protocol::FinishStatus::Succeeded)
        .await;

    let (text, samples) = eventually("the finished job in the scrape", || {
        let app = &app;
        async move {
            let (text, samples) = scrape(app).await;
            let done = value(
                &samples,
                "restic_manager_jobs",
                &[("kind", "backup"), ("status", "succeeded")],
            );
            (done == 1.0).then_some((text, samples))
        }
    })
    .await;
    assert!(!text.contains(hostname), "the hostname leaked");
    assert_eq!(value(&samples, "restic_manager_hosts_online", &[]), 1.0);
    assert_eq!(
        value(&samples, "restic_manager_websocket_sessions", &[]),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "restic_manager_jobs",
            &[("kind", "backup"), ("status", "queued")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &samples,
            "restic_manager_job_duration_seconds_count",
            &[("kind", "backup")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "restic_manager_job_duration_seconds_bucket",
            &[("kind", "backup"), ("le", "+Inf")]
        ),
        1.0
    );
    let last = value(
        &samples,
        "restic_manager_last_successful_backup_timestamp_seconds",
        &[("host_id", host.as_str()), ("group", "etc")],
    );
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - last).abs() < 120.0, "{last} vs {now}");
    let received = |t: &str| {
        value(
            &samples,
            "restic_manager_messages_received_total",
            &[("type", t)],
        )
    };
    assert_eq!(received("hello"), 1.0);
    assert_eq!(received("log.stream"), 5.0);
    assert_eq!(received("job.started"), 1.0);
    assert_eq!(received("job.finished"), 1.0);
    assert_eq!(received("invalid"), 0.0);
    let sent = |t: &str| {
        value(
            &samples,
            "restic_manager_messages_sent_total",
            &[("type", t)],
        )
    };
    assert_eq!(sent("command.run"), 1.0);
    assert!(sent("config.update") >= 2.0, "hello and the group change");
    assert!(sent("schedule.set") >= 2.0);
    assert!(sent("ack") >= 1.0);
    let batches = value(&samples, "restic_manager_persistence_batch_rows_count", &[]);
    let rows = value(&samples, "restic_manager_persistence_batch_rows_sum", &[]);
    assert!(batches >= 1.0, "{batches}");
    assert_eq!(rows, 5.0, "every line was written in some batch");
    assert_eq!(
        value(
            &samples,
            "restic_manager_persistence_flush_lag_seconds_count",
            &[]
        ),
        batches
    );

    // A frame that does not decode counts as invalid.
    agent.send_text("{not json").await;
    agent.expect_error().await;
    let (_, after) = scrape(&app).await;
    assert_eq!(
        value(
            &after,
            "restic_manager_messages_received_total",
            &[("type", "invalid")]
        ),
        1.0
    );

    agent.close().await;
    eventually("the session gone from the scrape", || {
        let app = &app;
        async move {
            let (_, samples) = scrape(app).await;
            let gone = value(&samples, "restic_manager_websocket_sessions", &[]) == 0.0
                && value(&samples, "restic_manager_hosts_online", &[]) == 0.0;
            gone.then_some(())
        }
    })
    .await;
}

/// The parser used above refuses what is not exposition format.
#[test]
fn parser_refuses_bad_lines() {
    let good = "# HELP a A.\n# TYPE a counter\na_total{x=\"1\",y=\"q\\\"\"} 3\n# EOF\n";
    let samples = parse(good);
    assert_eq!(samples[0].0, "a_total");
    assert_eq!(samples[0].1["y"], "q\"");
    for bad in [
        "a_total 1\n# EOF\n",
        "# HELP a A.\n# TYPE a counter\na_total 1\n",
        "# HELP a A.\n# TYPE a counter\na 1\n# EOF\n",
        "# TYPE a counter\n# HELP a A.\na_total one\n# EOF\n",
        "# HELP a A.\n# TYPE a counter\n1a 2\n# EOF\n",
        "# HELP a A.\n# TYPE a summary\na 2\n# EOF\n",
        "# HELP a A.\n# TYPE a gauge\na 2\n# EOF\na 3\n",
    ] {
        assert!(std::panic::catch_unwind(|| parse(bad)).is_err(), "{bad:?}");
    }
}

/// The scrape's aggregate queries (hosts online, jobs by kind and status,
/// last successful backup per host and group) on `pool`.
fn check_aggregates(pool: &restic_manager::store::Pool) {
    use restic_manager::store::{self, admin_queries, models, JobKind, JobStatus, JobTrigger};
    let mut c = pool.get().unwrap();
    let now = store::now_ms();
    let mut hosts = Vec::new();
    for name in ["a", "b"] {
        let host = store::hosts::insert(
            &mut c,
            &models::NewHost::new(
                store::new_id(),
                name,
                restic_manager::auth::hash_token(name),
                now,
            ),
        )
        .unwrap();
        hosts.push(host.id);
    }
    store::hosts::set_online(&mut c, &hosts[0], true, now).unwrap();
    // Host a: two succeeded backups of "etc" (the later counts), one failed of "home", a queued check.
    // A backup always belongs to a source group (the API refuses one
    // without); the last-success summary is kept per host and group.
    let mut group_ids = std::collections::HashMap::new();
    for name in ["etc", "home"] {
        let group = store::source_groups::insert(
            &mut c,
            &models::NewSourceGroup {
                id: store::new_id().into(),
                host_id: hosts[0].clone(),
                name: name.into(),
                includes: vec!["/etc".to_owned()],
                excludes: Vec::new(),
                retention_policy: None,
                retry_max: 0,
                retry_backoff_seconds: 60,
                created_at: now,
                updated_at: now,
                prune_after_forget: false,
                kind: "files".to_owned(),
                dump: None,
                dump_password_sealed: None,
                options: None,
            },
        )
        .unwrap();
        group_ids.insert(name, group.id);
    }
    let job = |c: &mut store::DbConnection, kind: JobKind, tag: Option<&str>| {
        let mut new = models::NewJob::new(
            store::new_id(),
            hosts[0].clone(),
            kind,
            JobTrigger::Manual,
            now,
        );
        new.tag = tag.map(str::to_owned);
        new.source_group_id = tag.map(|t| group_ids[t].clone());
        store::jobs::insert(c, &new).unwrap().id
    };
    let finish = |c: &mut store::DbConnection, id: &str, status: JobStatus, at: i64| {
        let done = models::JobFinish {
            status,
            finished_at: at,
            exit_code: Some(0),
            error: None,
            warning: None,
            stats: None,
        };
        store::channel::finish_for_host(
            c,
            &HostId::from(hosts[0].as_str()),
            &JobId::from(id),
            &done,
        )
        .unwrap();
    };
    let first = job(&mut c, JobKind::Backup, Some("etc"));
    finish(&mut c, &first, JobStatus::Succeeded, now - 5_000);
    let second = job(&mut c, JobKind::Backup, Some("etc"));
    finish(&mut c, &second, JobStatus::Succeeded, now - 1_000);
    let failed = job(&mut c, JobKind::Backup, Some("home"));
    finish(&mut c, &failed, JobStatus::Failed, now);
    job(&mut c, JobKind::Check, None);

    assert_eq!(admin_queries::hosts_online(&mut c).unwrap(), 1);
    let mut jobs = admin_queries::jobs_by_kind_and_status(&mut c).unwrap();
    jobs.sort_by_key(|(k, s, _)| (k.as_str(), s.as_str()));
    assert_eq!(
        jobs,
        vec![
            (JobKind::Backup, JobStatus::Failed, 1),
            (JobKind::Backup, JobStatus::Succeeded, 2),
            (JobKind::Check, JobStatus::Queued, 1),
        ]
    );
    let last = admin_queries::last_successful_backups(&mut c).unwrap();
    assert_eq!(
        last,
        vec![(
            hosts[0].to_string(),
            Some("etc".to_owned()),
            Some(now - 1_000)
        )]
    );
    // A revoked host leaves the scrape.
    store::hosts::revoke(&mut c, &hosts[0], now).unwrap();
    assert_eq!(admin_queries::hosts_online(&mut c).unwrap(), 0);
    assert!(admin_queries::last_successful_backups(&mut c)
        .unwrap()
        .is_empty());
}

/// The scrape's aggregate queries give the right numbers on SQLite and, when configured, PostgreSQL.
#[test]
fn aggregates_on_both_backends() {
    let (_dir, pool) = crate::common::db::sqlite_pool();
    check_aggregates(&pool);
    if let Some(pg) = crate::common::db::postgres_pool() {
        check_aggregates(&pg);
        println!("aggregates_on_both_backends: backend=postgres ok");
    }
}

/// `dist/prometheus-alerts.yml` (issue 15 A, last point) is a rules file
/// Prometheus can load (groups of rules, each with an alert name, an
/// expression, a severity and a summary), and every `restic_manager_*`
/// metric its expressions name is served by `/metrics`.
#[actix_web::test]
async fn shipped_alert_rules_use_served_metrics() {
    #[derive(serde::Deserialize)]
    struct RuleFile {
        groups: Vec<Group>,
    }
    #[derive(serde::Deserialize)]
    struct Group {
        name: String,
        rules: Vec<Rule>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rule {
        alert: String,
        expr: String,
        #[serde(rename = "for")]
        _for: Option<String>,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/prometheus-alerts.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let file: RuleFile = serde_norway::from_str(&text).unwrap();
    let app = spawn_app().await;
    let served = metrics_text(&app).await;
    let mut named = BTreeSet::new();
    for group in &file.groups {
        assert!(!group.name.is_empty());
        for rule in &group.rules {
            assert!(!rule.alert.is_empty() && !rule.expr.is_empty());
            assert!(rule.labels.contains_key("severity"), "{}", rule.alert);
            assert!(rule.annotations.contains_key("summary"), "{}", rule.alert);
            let mut rest = rule.expr.as_str();
            while let Some(at) = rest.find("restic_manager_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                named.insert(name);
            }
        }
    }
    for want in [
        "restic_manager_last_successful_backup_timestamp_seconds",
        "restic_manager_hosts_online",
        "restic_manager_jobs",
    ] {
        assert!(named.contains(want), "no alert on {want}");
    }
    for name in &named {
        let family = format!("# TYPE {name} ");
        assert!(
            served.contains(&family),
            "{name} is not served by /metrics:\n{served}"
        );
    }
}
