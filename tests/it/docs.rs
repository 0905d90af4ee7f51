//! The protocol and REST documents in `docs/` against the code, so that
//! they stay true as the code grows:
//!
//! - every message type of `protocol.rs` has its row in the table of its
//!   direction in `docs/PROTOCOL.md`, the row names every field of its
//!   payload, and the tables list no type the code lacks;
//! - every route of the API's route table (`http::api::endpoints`) has its
//!   row in `docs/API.md` naming its query parameters and request body
//!   fields, every field of the answers is named in the document, and the
//!   table lists no route the server lacks.
//!
//! The payload samples below set every optional field, and are struct
//! literals: a new field does not compile until it is added here (and so
//! to the document).

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use restic_manager::http::api::endpoints;
use restic_manager::protocol::{
    Ack, AgentToServer, AgentUpdateAvailable, CatalogChunk, CatalogEntry, CatalogList,
    CatalogListing, CommandCancel, CommandResult, CommandRun, ConfigUpdate, DownloadCancel,
    DownloadCredit, DownloadEnd, DownloadErrorCode, DownloadReady, DownloadStart, DownloadType,
    DumpDriver, DumpSpec, ErrorFrame, FinishStatus, Heartbeat, Hello, JobFinished, JobKind,
    JobProgress, JobReport, JobStarted, LockState, LogStream, LogStreamKind, RepoStats,
    RestoreOverwrite, RestoreSpec, RetentionPolicy, ScheduleAck, ScheduleFire, ScheduleSet,
    ScheduleSpec, ServerToAgent, SnapshotInfo, SnapshotsReport, SourceGroupSpec, WireMessage,
    ORIGIN_AGENT,
};
use serde_json::{json, Map, Value};

use crate::common::server::{client, spawn_app};

fn document(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The lines of the `## heading` section of `text`, up to the next `## `.
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| *l != heading);
    assert!(lines.next().is_some(), "no section {heading:?}");
    lines.take_while(|l| !l.starts_with("## ")).collect()
}

/// The table rows of `lines` by their first cell (its backticked text):
/// `| \`job.finished\` | …` → `("job.finished", the row)`.
fn rows<'a>(lines: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    lines
        .iter()
        .filter_map(|line| {
            let cell = line.strip_prefix("| `")?;
            let end = cell.find('`')?;
            Some((&cell[..end], *line))
        })
        .collect()
}

/// Whether `text` names `word` as a whole word (not inside a longer name).
fn mentions(text: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// Every object key in `value`, at any depth, except inside the objects
/// under the keys in `opaque` (documented apart from the row).
fn keys(value: &Value, opaque: &[&str], out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                out.insert(key.clone());
                if !opaque.contains(&key.as_str()) {
                    keys(inner, opaque, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys(v, opaque, out)),
        _ => {}
    }
}

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_000_000, 0).unwrap()
}

fn full_retention() -> RetentionPolicy {
    RetentionPolicy {
        keep_last: Some(1),
        keep_hourly: Some(2),
        keep_daily: Some(3),
        keep_weekly: Some(4),
        keep_monthly: Some(5),
        keep_yearly: Some(6),
        keep_within: Some("30d".to_owned()),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// One message of every agent → server type, every optional field set.
fn agent_messages() -> Vec<AgentToServer> {
    let id = || "job-1".to_owned();
    vec![
        Hello {
            protocol_version: 1,
            agent_version: "0.1.0".to_owned(),
            restic_version: "0.14.0".to_owned(),
            hostname: "web-01".to_owned(),
            os: "linux".to_owned(),
            arch: "amd64".to_owned(),
            boot_time: Some(at()),
            capabilities: Some(vec!["cancel".to_owned()]),
            last_known_config_version: Some(3),
        }
        .into(),
        Heartbeat {
            sent_at: at(),
            active_job_ids: Some(vec![id()]),
            metrics: object(json!({"load1": 0.5})),
            config_version: Some(3),
        }
        .into(),
        CommandResult {
            job_id: id(),
            accepted: false,
            error: Some("busy".to_owned()),
        }
        .into(),
        JobStarted {
            job_id: id(),
            kind: JobKind::Backup,
            started_at: at(),
        }
        .into(),
        JobProgress {
            job_id: id(),
            percent_done: 0.5,
            files_done: 1,
            total_files: 2,
            bytes_done: 3,
            total_bytes: 4,
            eta_seconds: Some(5),
            throughput_bps: 6,
            step: Some("dumping".to_owned()),
            dumped_bytes: Some(7),
        }
        .into(),
        LogStream {
            job_id: id(),
            seq: 1,
            ts: at(),
            stream: LogStreamKind::Stdout,
            payload: "line".to_owned(),
        }
        .into(),
        JobFinished {
            job_id: id(),
            status: FinishStatus::Succeeded,
            exit_code: 3,
            finished_at: at(),
            stats: Some(object(json!({"snapshot_id": "f535d3c7"}))),
            error: Some("some files could not be read".to_owned()),
        }
        .into(),
        SnapshotsReport {
            snapshots: vec![SnapshotInfo {
                id: "f535d3c7aa".to_owned(),
                short_id: "f535d3c7".to_owned(),
                time: at(),
                hostname: "web-01".to_owned(),
                paths: vec!["/etc".to_owned()],
                tags: vec!["etc".to_owned()],
                size_bytes: Some(1),
                file_count: Some(2),
            }],
        }
        .into(),
        RepoStats {
            size_bytes: 1,
            snapshot_count: 2,
            dedup_ratio: 1.5,
            last_check_at: Some(at()),
            last_check_status: Some("ok".to_owned()),
            lock_state: LockState::Unlocked,
        }
        .into(),
        ScheduleAck {
            version: 4,
            applied_at: at(),
        }
        .into(),
        ScheduleFire {
            schedule_id: "sch-1".to_owned(),
            scheduled_at: at(),
            kind: Some(restic_manager::protocol::ScheduleKind::Backup),
        }
        .into(),
        CatalogChunk {
            job_id: id(),
            snapshot_id: "f535d3c7aa".to_owned(),
            seq: 1,
            entries: vec![catalog_entry()],
        }
        .into(),
        CatalogListing {
            request_id: "r-1".to_owned(),
            entries: vec![catalog_entry()],
            done: true,
            error: Some("snapshot f535d3c7aa not found".to_owned()),
        }
        .into(),
        DownloadReady {
            download_id: "dl-1".to_owned(),
            kind: DownloadType::File,
            size: Some(6),
        }
        .into(),
        DownloadEnd {
            download_id: "dl-1".to_owned(),
            bytes: 6,
            code: Some(DownloadErrorCode::Failed),
            error: Some("restic failed".to_owned()),
        }
        .into(),
        restic_manager::protocol::HealthReport {
            results: vec![restic_manager::protocol::HealthCheckResult {
                name: "web".to_owned(),
                ok: false,
                latency_ms: Some(12),
                status_code: Some(503),
                error: Some("HTTP status 503".to_owned()),
                checked_at: at(),
            }],
        }
        .into(),
        JobReport {
            job_id: id(),
            origin: ORIGIN_AGENT.to_owned(),
            kind: JobKind::Backup,
            schedule_id: "sch-1".to_owned(),
            scheduled_at: at(),
            tag: "etc".to_owned(),
            includes: vec!["/etc".to_owned()],
            excludes: vec!["*.tmp".to_owned()],
            started_at: at(),
        }
        .into(),
        Ack {
            correlation_id: "cu-1".to_owned(),
            accepted: false,
            reason: Some("not allowed".to_owned()),
        }
        .into(),
        restic_manager::protocol::DiscoveryReport {
            containers: vec![restic_manager::protocol::DiscoveredContainer {
                id: "4f1c".to_owned(),
                name: "shop-db".to_owned(),
                image: "postgres:16".to_owned(),
                state: "running".to_owned(),
                networks: vec!["shop".to_owned()],
                ports: vec![restic_manager::protocol::ContainerPort {
                    private_port: 5432,
                    public_port: Some(15432),
                    ip: Some("127.0.0.1".to_owned()),
                    protocol: "tcp".to_owned(),
                }],
                database: Some(restic_manager::protocol::DatabaseType::Postgres),
                env: vec![restic_manager::protocol::EnvHint::new(
                    "POSTGRES_DB",
                    "shop",
                )],
            }],
        }
        .into(),
    ]
}

/// A snapshot node with every optional field set.
fn catalog_entry() -> CatalogEntry {
    CatalogEntry {
        path: "/etc/hosts".to_owned(),
        kind: "file".to_owned(),
        size: Some(220),
        mtime: Some(at()),
        mode: Some(420),
    }
}

/// One message of every server → agent type, every optional field set.
fn server_messages() -> Vec<ServerToAgent> {
    let id = || "job-1".to_owned();
    let some = |s: &str| Some(s.to_owned());
    vec![
        ConfigUpdate {
            repo_url: some("rest:https://backup.example/web-01"),
            repo_password: some("secret"),
            repo_username: Some(some("web-01")),
            repo_credential: Some(some("secret")),
            hook_shell: Some(some("/bin/sh")),
            version: Some(3),
        }
        .into(),
        ScheduleSet {
            version: 4,
            schedules: vec![ScheduleSpec {
                id: "sch-1".to_owned(),
                cron_expr: "0 2 * * *".to_owned(),
                enabled: true,
                kind: restic_manager::protocol::ScheduleKind::Backup,
                source_groups: vec![SourceGroupSpec {
                    name: "etc".to_owned(),
                    includes: vec!["/etc".to_owned()],
                    excludes: vec!["*.tmp".to_owned()],
                    retention_policy: Some(full_retention()),
                    retry_max: 2,
                    retry_backoff_seconds: 300,
                }],
            }],
        }
        .into(),
        CommandRun {
            job_id: id(),
            kind: JobKind::Forget,
            args: vec!["--dry-run".to_owned()],
            includes: vec!["/etc".to_owned()],
            excludes: vec!["*.tmp".to_owned()],
            tag: some("etc"),
            retention_policy: Some(full_retention()),
            snapshot_id: None,
            restore: None,
            drill: None,
            dump: None,
        }
        .into(),
        CommandRun {
            job_id: id(),
            kind: JobKind::Restore,
            args: Vec::new(),
            includes: Vec::new(),
            excludes: Vec::new(),
            tag: None,
            retention_policy: None,
            snapshot_id: some("af4db64e47b173d8"),
            restore: Some(Box::new(RestoreSpec {
                paths: vec!["/etc/nginx".to_owned()],
                target: "/tmp/restore-1".to_owned(),
                overwrite: RestoreOverwrite::IfNewer,
                verify: true,
                source_host_id: some("host-2"),
                repository: Some(ConfigUpdate {
                    repo_url: some("/srv/repo"),
                    repo_password: some("pw"),
                    repo_username: Some(some("u")),
                    repo_credential: Some(some("c")),
                    hook_shell: None,
                    version: None,
                }),
            })),
            drill: None,
            dump: None,
        }
        .into(),
        CommandRun {
            job_id: id(),
            kind: JobKind::Drill,
            args: Vec::new(),
            includes: Vec::new(),
            excludes: Vec::new(),
            tag: some("web"),
            retention_policy: None,
            snapshot_id: some("af4db64e47b173d8"),
            restore: None,
            drill: Some(Box::new(restic_manager::protocol::DrillSpec {
                files: vec![restic_manager::protocol::DrillFile {
                    path: "/etc/hosts".to_owned(),
                    size: 220,
                }],
            })),
            dump: None,
        }
        .into(),
        CommandRun {
            job_id: id(),
            kind: JobKind::Backup,
            args: Vec::new(),
            includes: Vec::new(),
            excludes: Vec::new(),
            tag: some("shop-db"),
            retention_policy: None,
            snapshot_id: None,
            restore: None,
            drill: None,
            dump: Some(Box::new(DumpSpec {
                driver: DumpDriver::Postgres,
                database: some("shop"),
                all: true,
                host: some("db.internal"),
                port: Some(5432),
                user: some("backup"),
                password: some("pw"),
                container: some("pg"),
                path: some("/var/lib/app.db"),
            })),
        }
        .into(),
        CommandCancel { job_id: id() }.into(),
        AgentUpdateAvailable {
            latest_version: "0.2.0".to_owned(),
            package_url: "https://example.org/agent.deb".to_owned(),
            changelog: some("fixes"),
        }
        .into(),
        Ack {
            correlation_id: "e0b7".to_owned(),
            accepted: false,
            reason: some("unknown job"),
        }
        .into(),
        ErrorFrame {
            code: "unsupported_protocol".to_owned(),
            detail: "protocol_version 2".to_owned(),
            correlation_id: some("9f1c"),
            supported: Some(vec![1]),
        }
        .into(),
        CatalogList {
            request_id: "r-1".to_owned(),
            snapshot_id: "f535d3c7aa".to_owned(),
            path: "/etc".to_owned(),
        }
        .into(),
        DownloadStart {
            download_id: "dl-1".to_owned(),
            snapshot_id: "f535d3c7aa".to_owned(),
            path: "/etc".to_owned(),
            window: 32,
        }
        .into(),
        DownloadCredit {
            download_id: "dl-1".to_owned(),
            chunks: 16,
        }
        .into(),
        DownloadCancel {
            download_id: "dl-1".to_owned(),
        }
        .into(),
        restic_manager::protocol::HealthSet {
            checks: vec![restic_manager::protocol::HealthCheckSpec {
                name: "web".to_owned(),
                kind: restic_manager::protocol::HealthCheckType::Http,
                target: "https://127.0.0.1:8443/health".to_owned(),
                interval_seconds: 30,
                timeout_seconds: 5,
                expect_status: Some(200),
            }],
        }
        .into(),
    ]
}

/// Checks one direction: the samples cover `types` (the code's list), each
/// has a row in the `heading` table naming every field, and the table has
/// no other row. Returns the problems found.
fn check_direction<M: WireMessage>(
    text: &str,
    heading: &str,
    types: &[&str],
    samples: &[M],
) -> Vec<String> {
    let sampled: BTreeSet<&str> = samples.iter().map(|m| m.type_name()).collect();
    let listed: BTreeSet<&str> = types.iter().copied().collect();
    assert_eq!(
        sampled, listed,
        "docs.rs needs one sample of every {heading:?} message type"
    );
    let lines = section(text, heading);
    let table = rows(&lines);
    let mut problems = Vec::new();
    for sample in samples {
        let name = sample.type_name();
        let Some((_, row)) = table.iter().find(|(first, _)| *first == name) else {
            problems.push(format!("{heading}: no row for `{name}`"));
            continue;
        };
        let mut fields = BTreeSet::new();
        keys(
            &serde_json::to_value(sample).unwrap(),
            &["retention_policy"],
            &mut fields,
        );
        for field in fields {
            if !row.contains(&format!("`{field}`")) {
                problems.push(format!("{heading}: the `{name}` row lacks `{field}`"));
            }
        }
    }
    for (first, _) in &table {
        if !listed.contains(first) {
            problems.push(format!(
                "{heading}: `{first}` is not a message type of the code"
            ));
        }
    }
    problems
}

/// PROTOCOL.md has a row for every message type in both directions, with
/// every payload field, and the keep options of `retention_policy`.
#[test]
fn protocol_document_covers_every_message_and_field() {
    let text = document("PROTOCOL.md");
    let mut problems = check_direction(
        &text,
        "## Agent → server",
        AgentToServer::TYPES,
        &agent_messages(),
    );
    problems.extend(check_direction(
        &text,
        "## Server → agent",
        ServerToAgent::TYPES,
        &server_messages(),
    ));
    let mut keep = BTreeSet::new();
    keys(
        &serde_json::to_value(full_retention()).unwrap(),
        &[],
        &mut keep,
    );
    for field in keep {
        if !text.contains(&format!("`{field}`")) {
            problems.push(format!("retention_policy's `{field}` is not described"));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/PROTOCOL.md:\n{}",
        problems.join("\n")
    );
}

/// The component schema a `$ref` names.
fn resolve<'a>(schemas: &'a Value, reference: &str) -> &'a Value {
    let name = reference
        .rsplit('/')
        .next()
        .unwrap_or_else(|| panic!("bad $ref {reference}"));
    &schemas[name]
}

/// Every property name of `schema`, following `$ref`s, array items and
/// combinators, each component schema once.
fn properties(schemas: &Value, schema: &Value, seen: &mut BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut walk = vec![schema];
    while let Some(s) = walk.pop() {
        if let Some(reference) = s["$ref"].as_str() {
            if seen.insert(reference.to_owned()) {
                walk.push(resolve(schemas, reference));
            }
            continue;
        }
        if let Some(props) = s["properties"].as_object() {
            out.extend(props.keys().cloned());
            walk.extend(props.values());
        }
        walk.extend(
            ["items", "additionalProperties"]
                .iter()
                .map(|k| &s[*k])
                .filter(|v| v.is_object()),
        );
        for combinator in ["allOf", "oneOf", "anyOf"] {
            if let Some(parts) = s[combinator].as_array() {
                walk.extend(parts);
            }
        }
    }
    out
}

/// API.md has one row per route of the route table (and no other), the
/// row names its query parameters and request body fields, and every field
/// of every answer schema is named in the document. The schemas are read
/// from the served `GET /api/v1/openapi.json`, which the same table builds.
#[actix_web::test]
async fn api_document_covers_every_route_and_field() {
    let text = document("API.md");
    let lines = section(&text, "## Routes");
    let table = rows(&lines);
    let app = spawn_app().await;
    let openapi: Value = client()
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &openapi["components"]["schemas"];
    let operations = &openapi["paths"];

    let mut problems = Vec::new();
    let mut routes = BTreeSet::new();
    for e in endpoints() {
        let route = format!("{} {}", e.verb.as_str().to_uppercase(), e.path);
        routes.insert(route.clone());
        let Some((_, row)) = table.iter().find(|(first, _)| *first == route) else {
            problems.push(format!("no row for `{route}`"));
            continue;
        };
        for param in &e.query {
            if !row.contains(&format!("{}=", param.name)) {
                problems.push(format!(
                    "`{route}` lacks the query parameter {}",
                    param.name
                ));
            }
        }
        // Paths in the document are relative to its server URL
        // (`/api/v1`), exactly as the route table spells them.
        let operation = operations
            .get(e.path)
            .map(|item| &item[e.verb.as_str()])
            .filter(|op| op.is_object())
            .unwrap_or_else(|| panic!("{route} is not in openapi.json"));
        let body = &operation["requestBody"]["content"]["application/json"]["schema"];
        for field in properties(schemas, body, &mut BTreeSet::new()) {
            if !mentions(row, &field) {
                problems.push(format!("`{route}` lacks the body field {field}"));
            }
        }
        let answers = operation["responses"].as_object().unwrap();
        for (status, answer) in answers {
            if !status.starts_with('2') {
                continue;
            }
            let schema = &answer["content"]["application/json"]["schema"];
            for field in properties(schemas, schema, &mut BTreeSet::new()) {
                if !mentions(&text, &field) {
                    problems.push(format!("`{route}` answers {field}, never named"));
                }
            }
        }
    }
    for (first, _) in &table {
        if !routes.contains(*first) {
            problems.push(format!("`{first}` is not a route of the server"));
        }
    }
    assert!(problems.is_empty(), "docs/API.md:\n{}", problems.join("\n"));
}
