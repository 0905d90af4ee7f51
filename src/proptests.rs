//! Property tests (issue 15 C) for every decoder that takes outside input:
//! the WebSocket frame decoder (both directions), restic's `--json` lines
//! and reports of every version the agent parses (0.14 to 0.18), cron
//! expressions, `agent.toml` and the server's config file. Each gets any
//! text, and text shaped like its input (so that the cases reach past the
//! first syntax check), and must answer with a value or an error — never
//! panic.
//!
//! [`CASES`] cases per property by default (the whole file runs in a few
//! seconds); `PROPTEST_CASES=100000 cargo test --lib proptests` for more.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::agent::config::AgentConfig;
use crate::agent::restic;
use crate::config::{self, CommonArgs, ServeArgs, ServerConfig};
use crate::cron::CronExpr;
use crate::protocol::{self, AgentToServer, Envelope, ErrorFrame, ServerToAgent, WireMessage};

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 2000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // Failures are reported with their minimal input; no files in src/.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        Just(json!("2026-11-23T02:00:00Z")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names of the protocol and of restic's output, or anything.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "job_id",
            "seq",
            "ts",
            "stream",
            "payload",
            "status",
            "exit_code",
            "finished_at",
            "stats",
            "error",
            "kind",
            "schedule_id",
            "scheduled_at",
            "protocol_version",
            "hostname",
            "entries",
            "path",
            "size",
            "snapshot_id",
            "download_id",
            "bytes",
            "code",
            "message",
            "message_type",
            "percent_done",
            "seconds_elapsed",
            "bytes_done",
            "total_bytes",
            "files_done",
            "total_files",
            "seconds_remaining",
            "item",
            "action",
            "Op",
            "Err",
            "version",
            "id",
            "short_id",
            "time",
            "paths",
            "tags",
            "total_size",
            "total_file_count",
            "request_id",
            "done",
            "window",
            "correlation_id",
            "accepted",
            "type",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,10}",
    ]
}

/// Every wire type name, both directions.
fn message_types() -> Vec<&'static str> {
    AgentToServer::TYPES
        .iter()
        .chain(ServerToAgent::TYPES)
        .copied()
        .collect()
}

/// A frame shaped like an envelope: `{"id", "type", "data"}` with a known
/// or unknown type, and any data.
fn envelope_text() -> impl Strategy<Value = String> {
    (
        prop::option::of(".{0,40}"),
        prop_oneof![
            prop::sample::select(message_types()).prop_map(str::to_owned),
            ".{0,12}"
        ],
        json_value(),
        any::<bool>(),
    )
        .prop_map(|(id, kind, data, extra)| {
            let mut frame = serde_json::Map::new();
            if let Some(id) = id {
                frame.insert("id".into(), Value::String(id));
            }
            frame.insert("type".into(), Value::String(kind));
            frame.insert("data".into(), data);
            if extra {
                frame.insert("sent_at".into(), json!(1));
            }
            Value::Object(frame).to_string()
        })
}

/// Checks one frame the way a session and an agent read it.
fn decode_frame(text: &str) {
    match Envelope::<AgentToServer>::decode(text) {
        Ok(envelope) => {
            let _ = envelope.message.type_name();
        }
        Err(error) => {
            let frame = ErrorFrame::from_decode_error(&error, protocol::frame_id(text));
            assert!(
                frame.code == protocol::ERROR_BAD_FRAME
                    || frame.code == protocol::ERROR_UNKNOWN_TYPE,
                "{frame:?}"
            );
        }
    }
    let _ = protocol::hello_protocol_version(text);
    let _ = Envelope::<ServerToAgent>::decode(text);
}

/// A line shaped like restic's `--json` output, 0.14 to 0.18.
fn restic_json_line() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "status",
            "verbose_status",
            "summary",
            "error",
            "exit_error",
            "version",
            "restore-status",
            "other",
        ]),
        prop::collection::btree_map(field_name(), json_value(), 0..8),
    )
        .prop_map(|(message_type, fields)| {
            let mut object: serde_json::Map<String, Value> = fields.into_iter().collect();
            object.insert("message_type".into(), json!(message_type));
            Value::Object(object).to_string()
        })
}

/// Feeds a line through what the agent does with restic's output.
fn read_restic_line(line: &str) {
    let parsed = restic::parse_line(line);
    if let restic::OutputLine::Status(status) = &parsed {
        let _ = status.to_progress("job");
    }
    let mut digest = restic::OutputDigest::default();
    digest.stdout(&parsed);
    digest.stderr(line, &parsed);
    let _ = restic::parse_version(line);
    let _ = restic::header_paths(line);
    let _ = crate::agent::catalog::parse_ls_line(line);
}

/// Text shaped like a cron expression: five fields of cron tokens.
fn cron_text() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        "[0-9]{1,3}",
        Just("*".to_owned()),
        "\\*/[0-9]{1,3}",
        "[0-9]{1,2}-[0-9]{1,2}(/[0-9]{1,2})?",
        "[0-9]{1,2}(,[0-9]{1,2}){0,3}",
        "[0-9]{0,2}[LW#?][0-9]{0,2}",
        prop::sample::select(vec!["MON", "SUN-SAT", "JAN", "FEB-DEC", "L", "5L", "1#5"])
            .prop_map(str::to_owned),
    ];
    prop_oneof![
        prop::collection::vec(field, 1..8).prop_map(|fields| fields.join(" ")),
        prop::sample::select(vec!["@yearly", "@daily", "@hourly", "@reboot", "@every"])
            .prop_map(str::to_owned),
    ]
}

/// TOML lines with the agent's and the server's keys and any values.
fn toml_text(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    let value = prop_oneof![
        "\"[ -~]{0,20}\"",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("[\"a*\", \"[x\"]".to_owned()),
        Just("{}".to_owned()),
        "[ -~]{0,10}",
    ];
    let line = prop_oneof![
        (prop::sample::select(keys.to_vec()), value).prop_map(|(k, v)| format!("{k} = {v}")),
        Just("[hooks]".to_owned()),
        "[ -~]{0,30}",
    ];
    prop::collection::vec(line, 0..10).prop_map(|lines| lines.join("\n"))
}

const AGENT_KEYS: &[&str] = &[
    "server_url",
    "host_id",
    "agent_token",
    "ca_file",
    "state_dir",
    "restic_binary",
    "allow_insecure_ws",
    "allowed_repositories",
    "pre",
    "post",
    "kinds",
    "timeout_seconds",
];

const SERVER_KEYS: &[&str] = &[
    "data_dir",
    "database_url",
    "key_file",
    "listen",
    "tls_cert",
    "tls_key",
    "max_frame_bytes",
    "missed_run_grace_seconds",
    "pool_size",
    "pool_connection_timeout_seconds",
    "pool_idle_timeout_seconds",
    "statement_timeout_seconds",
    "database_application_name",
    "database_plan_cache_mode",
    "log_retention_days",
    "catalog_keep",
    "max_download_bytes",
    "session_idle_seconds",
    "session_lifetime_seconds",
    "agent_latest_version",
    "agent_package_url",
    "agent_changelog_url",
];

proptest! {
    #![proptest_config(config())]

    /// Any bytes given to the frame decoder: a message or a bad_frame /
    /// unknown_type error, never a panic.
    #[test]
    fn frame_decoder_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_frame(&String::from_utf8_lossy(&bytes));
    }

    /// Envelope-shaped frames with any data reach the payload decoders.
    #[test]
    fn frame_decoder_takes_any_envelope(text in envelope_text()) {
        decode_frame(&text);
    }

    /// Any line of restic output, and JSON lines of every message type.
    #[test]
    fn restic_lines_never_panic(line in prop_oneof![".{0,200}", restic_json_line()]) {
        read_restic_line(&line);
    }

    /// `restic snapshots --json`, `stats --json` and `list locks` output.
    #[test]
    fn restic_reports_never_panic(
        items in prop::collection::vec(prop::collection::btree_map(field_name(), json_value(), 0..8), 0..4),
        noise in ".{0,40}",
    ) {
        let array = Value::Array(items.iter().map(|m| Value::Object(m.clone().into_iter().collect())).collect());
        for text in [array.to_string(), format!("{noise}\n{array}"), noise.clone()] {
            let _ = restic::parse_snapshots(&text);
            let _ = restic::parse_stats(&text);
            let _ = restic::lock_state(&text);
        }
        if let Some(first) = items.first() {
            let _ = restic::parse_stats(&Value::Object(first.clone().into_iter().collect()).to_string());
        }
    }

    /// Any text as a cron expression: parsed or refused; a parsed one
    /// answers its next runs and latest time.
    #[test]
    fn cron_expressions_never_panic(text in prop_oneof![".{0,64}", cron_text()]) {
        if let Ok(cron) = CronExpr::parse(&text) {
            let now = chrono::Utc::now();
            let _ = cron.next_runs(now, crate::cron::NEXT_RUNS);
            let _ = cron.latest_up_to(now);
            let _ = cron.describe();
        }
    }

    /// Any text as agent.toml: a config or an error naming the file.
    #[test]
    fn agent_toml_never_panics(text in prop_oneof![".{0,200}", toml_text(AGENT_KEYS)]) {
        if let Ok(config) = AgentConfig::parse(&text, Path::new("agent.toml")) {
            let _ = config.repository_allowed("s3:https://s3.example/b");
        }
    }

    /// Any text as the server's config file: resolved or an error.
    #[test]
    fn server_config_never_panics(text in prop_oneof![".{0,200}", toml_text(SERVER_KEYS)]) {
        if let Ok(file) = config::parse_file(&text, Path::new("server.toml")) {
            let _ = ServerConfig::resolve_with_file(&CommonArgs::default(), &ServeArgs::default(), file);
        }
    }
}
