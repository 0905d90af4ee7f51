//! `GET /api/v1/openapi.json`: the OpenAPI 3.0 document of the REST API,
//! built from the route table ([`super::endpoints`]) that also registers
//! the routes, so every served method and path is documented and nothing
//! else is. Unauthenticated (it holds no data).
//!
//! Per operation it gives the path and query parameters, the JSON request
//! body, the success answers and the error answers every endpoint of its
//! kind can give (400 with a body or query, 401 and 403 when
//! authenticated, 404 with path parameters, 413/415 with a body), all with
//! the `Error` schema. The component schemas below are written by hand
//! next to each other; enum values come from the Rust enums, and
//! `tests/api_openapi.rs` checks real answers against them.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

use super::table::{Access, Endpoint, Verb};
use super::PREFIX;
use crate::auth::Role;
use crate::http::auth::{CSRF_HEADER, SESSION_COOKIE};
use crate::store::{JobKind, JobStatus, JobTrigger, LogStream};

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::get("/openapi.json", |r| r.to(serve))
        .summary("This OpenAPI 3.0 document")
        .access(Access::Public)
        .ok(200, "OpenApiDocument")]
}

async fn serve() -> HttpResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| document().to_string());
    HttpResponse::Ok()
        .content_type("application/json")
        .body(text.clone())
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    let endpoints = super::endpoints();
    for e in &endpoints {
        let item = paths
            .entry(e.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(e.verb.as_str().to_owned(), operation(e));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "restic-manager",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The management API of restic-manager. JSON in and out; times are RFC 3339 UTC; \
                 ids are strings. Errors are `{{\"error\": {{\"code\", \"message\"}}}}`. \
                 Authenticate with `Authorization: Bearer <api token>`, or with the session \
                 cookie from POST /auth/login plus the CSRF token in `{CSRF_HEADER}` on every \
                 state-changing request. Roles: viewer reads; operator also changes hosts, \
                 repositories, source groups and schedules and runs jobs; admin also manages \
                 users, tokens and host revocation, and reads the audit log."
            ),
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token (POST /api-tokens or `restic-manager api-token create`).",
                },
                "cookieAuth": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": format!("The session cookie of POST /auth/login; state-changing requests also need `{CSRF_HEADER}`."),
                },
                "agentToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An agent token from POST /agent/enroll.",
                },
            },
            "schemas": schemas(),
        },
    })
}

/// `get_hosts_id_schedules` for `GET /hosts/{id}/schedules`.
fn operation_id(e: &Endpoint) -> String {
    let mut id = e.verb.as_str().to_owned();
    for seg in e.path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(seg.chars().filter(|c| !matches!(c, '{' | '}')).map(|c| {
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '_'
            }
        }));
    }
    id
}

fn error_answer(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": reference("Error")}},
    })
}

fn operation(e: &Endpoint) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(operation_id(e)));
    op.insert("summary".into(), json!(e.summary));
    let who = match e.access {
        Access::Public => "No authentication.".to_owned(),
        Access::Agent => "An agent token.".to_owned(),
        Access::User => "Any authenticated user.".to_owned(),
        Access::Role(role) => format!("Requires the {role} role (or higher)."),
    };
    let description = if e.description.is_empty() {
        who
    } else {
        format!("{} {who}", e.description)
    };
    op.insert("description".into(), json!(description));
    if let Access::Role(role) = e.access {
        op.insert("x-required-role".into(), json!(role));
    }
    match e.access {
        Access::Public => {
            op.insert("security".into(), json!([]));
        }
        Access::Agent => {
            op.insert("security".into(), json!([{"agentToken": []}]));
        }
        Access::User | Access::Role(_) => {}
    }

    let mut parameters: Vec<Value> = e
        .path_params()
        .into_iter()
        .map(|name| {
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
        })
        .collect();
    for p in &e.query {
        let mut schema = Map::new();
        schema.insert("type".into(), json!(p.kind));
        if let Some(format) = p.format {
            schema.insert("format".into(), json!(format));
        }
        if !p.values.is_empty() {
            schema.insert("enum".into(), json!(p.values));
        }
        parameters.push(json!({
            "name": p.name,
            "in": "query",
            "required": false,
            "description": p.description,
            "schema": schema,
        }));
    }
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(body) = e.body {
        op.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": {"application/json": {"schema": reference(body)}},
            }),
        );
    }

    let mut responses = Map::new();
    for a in &e.answers {
        let mut answer = Map::new();
        answer.insert("description".into(), json!(a.description));
        if let Some(schema) = a.schema {
            answer.insert(
                "content".into(),
                json!({"application/json": {"schema": reference(schema)}}),
            );
        } else if let Some(media) = a.media {
            answer.insert(
                "content".into(),
                json!({ media: {"schema": {"type": "string"}} }),
            );
        }
        responses.insert(a.status.to_string(), Value::Object(answer));
    }
    let mut standard = |status: u16, description: &str| {
        responses
            .entry(status.to_string())
            .or_insert_with(|| error_answer(description));
    };
    if e.body.is_some() || !e.query.is_empty() {
        standard(
            400,
            "Invalid request: the message names the field or parameter.",
        );
    }
    if e.access != Access::Public {
        standard(401, "Not authenticated, or the credential is invalid.");
    }
    match e.access {
        Access::Role(_) => standard(
            403,
            "The role does not allow this, or the CSRF token is missing (cookie sessions).",
        ),
        Access::User if e.verb != Verb::Get => {
            standard(403, "The CSRF token is missing or wrong (cookie sessions).")
        }
        _ => {}
    }
    if !e.path_params().is_empty() {
        standard(404, "Not found.");
    }
    if e.body.is_some() {
        standard(413, "The body is larger than 1 MiB.");
        standard(415, "The body is not application/json.");
    }
    standard(405, "The method is not allowed on this path.");
    responses.insert(
        "default".into(),
        error_answer("Unexpected error (500 internal, 503 database unavailable)."),
    );
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

// ---------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn text(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn integer() -> Value {
    json!({"type": "integer", "format": "int64"})
}

fn number() -> Value {
    json!({"type": "number", "format": "double"})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn secret(description: &str) -> Value {
    json!({"type": "string", "writeOnly": true, "description": description})
}

fn one_of(values: Vec<&str>) -> Value {
    json!({"type": "string", "enum": values})
}

fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn any_object() -> Value {
    json!({"type": "object", "additionalProperties": true})
}

/// `schema` that may also be `null`.
fn nullable(schema: Value) -> Value {
    match schema {
        Value::Object(mut map) if !map.contains_key("$ref") => {
            map.insert("nullable".into(), json!(true));
            Value::Object(map)
        }
        other => json!({"allOf": [other], "nullable": true}),
    }
}

/// An object with these properties; `!` after a name marks it required.
/// Answers mark every field required (they are always present, `null`
/// when unset); request bodies mark the ones they need.
fn object(fields: Vec<(&str, Value)>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, schema) in fields {
        let name = match name.strip_suffix('!') {
            Some(name) => {
                required.push(name.to_owned());
                name
            }
            None => name,
        };
        properties.insert(name.to_owned(), schema);
    }
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    schema.insert("additionalProperties".into(), json!(false));
    Value::Object(schema)
}

/// `{"items": [item], "total": N}`.
fn list_of(item: &str) -> Value {
    object(vec![
        ("items!", array(reference(item))),
        ("total!", integer()),
    ])
}

fn names<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| name(*v)).collect()
}

/// Every component schema, by name.
pub fn schemas() -> Map<String, Value> {
    let role = || one_of(names(&Role::ALL, Role::as_str));
    let job_kind = || one_of(names(JobKind::ALL, JobKind::as_str));
    let job_status = || one_of(names(JobStatus::ALL, JobStatus::as_str));
    let strings = || array(string());
    let retention = || nullable(reference("RetentionPolicy"));
    let keep = || json!({"type": "integer", "minimum": 0});

    let mut s = Map::new();
    let mut add = |name: &str, schema: Value| {
        s.insert(name.to_owned(), schema);
    };

    add(
        "Error",
        object(vec![(
            "error!",
            object(vec![
                (
                    "code!",
                    text("A snake_case code such as not_found or validation_failed."),
                ),
                (
                    "message!",
                    text("A sentence for humans; names the field at fault."),
                ),
            ]),
        )]),
    );
    add("OpenApiDocument", any_object());

    // Sessions and users.
    add(
        "LoginRequest",
        object(vec![
            ("username!", string()),
            ("password!", secret("The password.")),
        ]),
    );
    add(
        "User",
        object(vec![
            ("id!", string()),
            ("username!", string()),
            ("role!", role()),
            ("disabled!", boolean()),
            ("created_at!", time()),
            ("updated_at!", time()),
            ("last_login_at!", nullable(time())),
        ]),
    );
    add("UserList", list_of("User"));
    add(
        "LoginResponse",
        object(vec![
            ("user!", reference("User")),
            (
                "csrf_token!",
                text("Send it in X-CSRF-Token on state-changing requests."),
            ),
        ]),
    );
    add(
        "Me",
        object(vec![
            ("user!", reference("User")),
            ("role!", role()),
            ("auth!", one_of(vec!["session", "api_token"])),
            (
                "csrf_token",
                text("The session's CSRF token (cookie sessions only)."),
            ),
        ]),
    );
    add(
        "UserCreate",
        object(vec![
            (
                "username!",
                text("1-64 letters, digits, '.', '_', '-' or '@'."),
            ),
            ("password!", secret("At least 8 characters.")),
            ("role!", role()),
        ]),
    );
    add(
        "UserPatch",
        object(vec![
            ("role", role()),
            ("disabled", boolean()),
            (
                "password",
                secret("A new password; ends the user's sessions."),
            ),
        ]),
    );

    // Agent enrolment.
    add(
        "EnrollRequest",
        object(vec![
            ("token!", secret("The one-time enrolment token.")),
            ("hostname!", string()),
            ("os!", one_of(vec!["linux", "windows"])),
            ("arch!", one_of(vec!["amd64", "arm64"])),
        ]),
    );
    add(
        "EnrollResponse",
        object(vec![
            ("host_id!", string()),
            ("agent_token!", text("The agent's token; shown once.")),
        ]),
    );

    // Hosts.
    let labels = || json!({"type": "object", "additionalProperties": {"type": "string"}});
    add(
        "Host",
        object(vec![
            ("id!", string()),
            ("hostname!", string()),
            ("display_name!", nullable(string())),
            ("labels!", labels()),
            ("os!", string()),
            ("arch!", string()),
            ("agent_version!", nullable(string())),
            ("restic_version!", nullable(string())),
            ("status!", one_of(vec!["online", "offline"])),
            ("last_seen!", nullable(time())),
            ("enrolled_at!", time()),
            ("schedule_version!", integer()),
            ("acked_schedule_version!", integer()),
        ]),
    );
    add("HostList", list_of("Host"));
    add(
        "HostPatch",
        object(vec![
            ("display_name", nullable(text("null clears it."))),
            ("labels", labels()),
        ]),
    );
    add(
        "Repository",
        object(vec![
            ("url!", string()),
            ("username!", nullable(string())),
            ("password_set!", boolean()),
            ("credential_set!", boolean()),
            ("updated_at!", time()),
        ]),
    );
    add(
        "RepositoryPut",
        object(vec![
            ("url!", string()),
            ("username", nullable(string())),
            (
                "password",
                nullable(secret("The repository password; absent keeps it.")),
            ),
            (
                "credential",
                nullable(secret("The backend credential; absent keeps it.")),
            ),
        ]),
    );

    // Source groups and schedules.
    add(
        "RetentionPolicy",
        object(vec![
            ("keep_last", keep()),
            ("keep_hourly", keep()),
            ("keep_daily", keep()),
            ("keep_weekly", keep()),
            ("keep_monthly", keep()),
            ("keep_yearly", keep()),
            (
                "keep_within",
                text("A restic duration such as 30d or 1y2m."),
            ),
        ]),
    );
    add(
        "SourceGroup",
        object(vec![
            ("id!", string()),
            ("host_id!", string()),
            ("name!", string()),
            ("includes!", strings()),
            ("excludes!", strings()),
            ("retention_policy!", retention()),
            ("retry_max!", integer()),
            ("retry_backoff_seconds!", integer()),
            ("created_at!", time()),
            ("updated_at!", time()),
        ]),
    );
    add("SourceGroupList", list_of("SourceGroup"));
    add(
        "SourceGroupRequest",
        object(vec![
            (
                "name!",
                text("1-64 letters, digits, '.', '_' or '-'; the snapshots' tag."),
            ),
            ("includes!", strings()),
            ("excludes", strings()),
            ("retention_policy", retention()),
            (
                "retry_max",
                json!({"type": "integer", "minimum": 0, "maximum": 10}),
            ),
            (
                "retry_backoff_seconds",
                json!({"type": "integer", "minimum": 1, "maximum": 86400}),
            ),
        ]),
    );
    add(
        "Schedule",
        object(vec![
            ("id!", string()),
            ("host_id!", string()),
            ("cron_expr!", string()),
            ("enabled!", boolean()),
            ("source_groups!", strings()),
            ("description!", string()),
            ("next_runs!", array(time())),
            ("created_at!", time()),
            ("updated_at!", time()),
        ]),
    );
    add("ScheduleList", list_of("Schedule"));
    add(
        "ScheduleRequest",
        object(vec![
            (
                "cron_expr!",
                text("Five fields, UTC: minute hour day-of-month month day-of-week."),
            ),
            ("enabled", boolean()),
            ("source_groups!", strings()),
        ]),
    );

    // Jobs.
    add(
        "JobCreate",
        object(vec![
            ("kind!", job_kind()),
            (
                "source_group",
                text("Group name; required for backup and forget."),
            ),
        ]),
    );
    add(
        "Job",
        object(vec![
            ("id!", string()),
            ("host_id!", string()),
            ("kind!", job_kind()),
            ("status!", job_status()),
            (
                "trigger!",
                one_of(names(JobTrigger::ALL, JobTrigger::as_str)),
            ),
            ("source_group_id!", nullable(string())),
            ("tag!", nullable(string())),
            ("includes!", strings()),
            ("excludes!", strings()),
            ("retention_policy!", retention()),
            ("schedule_id!", nullable(string())),
            ("scheduled_at!", nullable(time())),
            ("attempt!", integer()),
            ("first_attempt_id!", nullable(string())),
            ("retry_at!", nullable(time())),
            ("created_at!", time()),
            ("dispatched_at!", nullable(time())),
            ("accepted_at!", nullable(time())),
            ("started_at!", nullable(time())),
            ("finished_at!", nullable(time())),
            ("exit_code!", nullable(integer())),
            ("error!", nullable(string())),
            ("warning!", nullable(string())),
            ("progress!", nullable(any_object())),
            ("stats!", nullable(any_object())),
            ("last_log_seq!", integer()),
        ]),
    );
    add("JobList", list_of("Job"));
    add(
        "LogLine",
        object(vec![
            ("seq!", integer()),
            ("ts!", time()),
            ("stream!", one_of(names(LogStream::ALL, LogStream::as_str))),
            ("payload!", string()),
        ]),
    );
    add(
        "LogPage",
        object(vec![
            ("items!", array(reference("LogLine"))),
            ("total!", integer()),
        ]),
    );
    add(
        "CancelResult",
        object(vec![
            ("id!", string()),
            ("outcome!", one_of(vec!["cancelled", "cancel_requested"])),
        ]),
    );

    // Reports.
    add(
        "Snapshot",
        object(vec![
            ("id!", string()),
            ("short_id!", string()),
            ("time!", time()),
            ("hostname!", string()),
            ("paths!", strings()),
            ("tags!", strings()),
            ("size_bytes!", nullable(integer())),
            ("file_count!", nullable(integer())),
            ("reported_at!", time()),
        ]),
    );
    add("SnapshotList", list_of("Snapshot"));
    add(
        "RepoStats",
        object(vec![
            ("recorded_at!", time()),
            ("size_bytes!", nullable(integer())),
            ("snapshot_count!", nullable(integer())),
            ("dedup_ratio!", nullable(number())),
            ("last_check_at!", nullable(time())),
            ("last_check_status!", nullable(string())),
            ("lock_state!", nullable(one_of(vec!["locked", "unlocked"]))),
        ]),
    );
    add("RepoStatsList", list_of("RepoStats"));
    add(
        "MissedRun",
        object(vec![
            ("id!", string()),
            ("host_id!", string()),
            ("schedule_id!", string()),
            ("scheduled_at!", time()),
            ("detected_at!", time()),
        ]),
    );
    add("MissedRunList", list_of("MissedRun"));

    // Administration.
    add(
        "EnrollmentTokenCreate",
        object(vec![(
            "ttl_seconds",
            json!({"type": "integer", "minimum": 60, "maximum": 2_592_000, "default": 86_400}),
        )]),
    );
    add(
        "EnrollmentTokenCreated",
        object(vec![
            ("id!", string()),
            ("token!", text("The one-time token; shown only here.")),
            ("expires_at!", time()),
        ]),
    );
    add(
        "EnrollmentToken",
        object(vec![
            ("id!", string()),
            ("created_at!", time()),
            ("expires_at!", time()),
            (
                "created_by!",
                nullable(text("Username of the creator; null for the CLI.")),
            ),
        ]),
    );
    add("EnrollmentTokenList", list_of("EnrollmentToken"));
    let token_fields = || {
        vec![
            ("id!", string()),
            ("name!", string()),
            ("user_id!", string()),
            ("username!", string()),
            ("role!", nullable(role())),
            ("created_at!", time()),
            ("last_used_at!", nullable(time())),
            ("expires_at!", nullable(time())),
            ("expired!", boolean()),
        ]
    };
    add(
        "ApiTokenCreate",
        object(vec![
            ("name!", text("1-100 characters.")),
            (
                "ttl_seconds",
                json!({"type": "integer", "minimum": 60, "maximum": 157_680_000}),
            ),
            ("role", role()),
        ]),
    );
    add("ApiToken", object(token_fields()));
    add("ApiTokenList", list_of("ApiToken"));
    let mut created = token_fields();
    created.push(("token!", text("The API token; shown only here.")));
    add("ApiTokenCreated", object(created));
    add(
        "AuditEntry",
        object(vec![
            ("id!", string()),
            ("at!", time()),
            ("actor!", string()),
            ("action!", string()),
            ("target!", nullable(string())),
            ("detail!", nullable(any_object())),
            ("source_addr!", nullable(string())),
        ]),
    );
    add("AuditList", list_of("AuditEntry"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in the document names a component schema.
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    /// Every schema the route table or a schema names exists, and every component is used.
    #[test]
    fn references_resolve() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in &found {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(schemas.contains_key(name), "unknown schema {name}");
        }
        for name in schemas.keys() {
            let target = format!("#/components/schemas/{name}");
            assert!(found.contains(&target), "schema {name} is never used");
        }
    }

    /// Each method and path appears once; ids are unique; path parameters are declared.
    #[test]
    fn operations_are_unique_and_complete() {
        let endpoints = super::super::endpoints();
        let mut seen = std::collections::HashSet::new();
        for e in &endpoints {
            assert!(
                seen.insert((e.verb, e.path)),
                "{:?} {} twice",
                e.verb,
                e.path
            );
            assert!(!e.summary.is_empty(), "{} has no summary", e.path);
            assert!(
                e.answers.iter().any(|a| a.status < 300),
                "{:?} {} has no success answer",
                e.verb,
                e.path
            );
        }
        let doc = document();
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (verb, op) in item.as_object().unwrap() {
                assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()));
                let declared = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .map(|p| p["name"].as_str().unwrap().to_owned())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                let wanted = path.matches('{').count();
                assert_eq!(declared.len(), wanted, "{verb} {path}");
            }
        }
        assert_eq!(ids.len(), endpoints.len());
    }

    /// A Server-Sent Events answer is documented with its media type.
    #[test]
    fn event_stream_answers() {
        let e = Endpoint::get("/jobs/{id}/events", |r| r).event_stream("Live events.");
        let op = operation(&e);
        assert!(op["responses"]["200"]["content"]["text/event-stream"].is_object());
    }

    /// Operation ids are derived from the method and path.
    #[test]
    fn operation_ids() {
        let e = Endpoint::get("/hosts/{id}/repo-stats", |r| r);
        assert_eq!(operation_id(&e), "get_hosts_id_repo_stats");
    }
}
