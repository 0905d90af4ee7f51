//! `GET /api/v1/openapi.json`: the OpenAPI 3.0 document of the REST API,
//! built from the route table ([`super::endpoints`]) that also registers
//! the routes, so every served method and path is documented and nothing
//! else is. Unauthenticated (it holds no data).
//!
//! Per operation it gives the path and query parameters, the JSON request
//! body, the success answers and the error answers every endpoint of its
//! kind can give (400 with a body or query, 401 and 403 when
//! authenticated, 404 with path parameters, 413/415 with a body), all with
//! the `Error` schema. The component schemas are derived from the request
//! and answer types (`#[derive(utoipa::ToSchema)]`, named with
//! `#[schema(as = ...)]`); enum values come from the Rust enums through the
//! `schema_with` functions below, and `tests/api_openapi.rs` checks real
//! answers against them.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType};
use utoipa::ToSchema;

use super::table::{Access, Endpoint, Verb};
use super::PREFIX;
use crate::auth::Role;
use crate::http::auth::{CSRF_HEADER, SESSION_COOKIE};
use crate::protocol::{self, LockState};
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

pub(super) fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A derived schema as JSON.
pub(super) fn derived<'s, T: ToSchema<'s>>() -> (&'s str, Value) {
    let (name, schema) = T::schema();
    (name, serde_json::to_value(schema).unwrap_or(Value::Null))
}

/// An answer carries every field (`null` when unset) and nothing else;
/// utoipa leaves `Option` fields out of `required`.
pub(super) fn answer(mut schema: Value) -> Value {
    let names: Vec<Value> = schema["properties"]
        .as_object()
        .map(|p| p.keys().map(|k| json!(k)).collect())
        .unwrap_or_default();
    schema["required"] = Value::Array(names);
    closed(schema)
}

/// No fields but the documented ones (requests get this from
/// `#[serde(deny_unknown_fields)]`).
fn closed(mut schema: Value) -> Value {
    schema["additionalProperties"] = json!(false);
    schema
}

/// `{"items": [item], "total": N}`.
pub(super) fn list_of(item: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": reference(item)},
            "total": {"type": "integer", "format": "int64"},
        },
        "required": ["items", "total"],
        "additionalProperties": false,
    })
}

/// Every component schema, by name: derived from the request and answer
/// types, except the error body (`http::error`), the enrolment messages
/// (`protocol`, which depends on serde alone and is shared with the agent)
/// and the list envelopes.
pub fn schemas() -> Map<String, Value> {
    use super::{api_tokens, enrollment_tokens, hosts, jobs, missed_runs, repo_stats};
    use super::{repositories, repository, schedules, session, snapshots, source_groups, users};

    let mut s = Map::new();
    let answers = [
        derived::<session::UserDto>(),
        derived::<session::LoginResponse>(),
        derived::<hosts::HostDto>(),
        derived::<repository::RepositoryDto>(),
        derived::<repositories::SharedRepositoryDto>(),
        derived::<source_groups::SourceGroupDto>(),
        derived::<source_groups::DumpView>(),
        derived::<schedules::ScheduleDto>(),
        derived::<jobs::JobDto>(),
        derived::<jobs::LogLineDto>(),
        derived::<jobs::LogsResponse>(),
        derived::<jobs::CancelResponse>(),
        derived::<snapshots::SnapshotDto>(),
        derived::<super::catalog::TreeEntryDto>(),
        derived::<super::catalog::HitDto>(),
        derived::<repo_stats::RepoStatsDto>(),
        derived::<missed_runs::MissedRunDto>(),
        derived::<enrollment_tokens::CreatedDto>(),
        derived::<enrollment_tokens::EnrollmentTokenDto>(),
        derived::<api_tokens::ApiTokenDto>(),
        derived::<super::audit_log::AuditEntryDto>(),
        derived::<super::version::VersionDto>(),
        derived::<super::policies::PolicyDto>(),
        derived::<super::policies::PolicyGroupDto>(),
        derived::<super::policies::PolicyScheduleDto>(),
        derived::<super::policies::SelectorDto>(),
        derived::<super::effective_config::EffectiveScheduleDto>(),
        derived::<super::effective_config::EffectiveDto>(),
        derived::<crate::actors::bulk::Skipped>(),
        derived::<crate::actors::bulk::BulkCreated>(),
        derived::<crate::actors::bulk::BulkCancelled>(),
    ];
    for (name, schema) in answers {
        s.insert(name.to_owned(), answer(schema));
    }
    // `csrf_token` is left out for API tokens.
    let (name, me) = derived::<session::MeResponse>();
    s.insert(name.to_owned(), closed(me));
    // The created token is the token's fields (`#[serde(flatten)]`) plus the secret.
    let mut created = s["ApiToken"].clone();
    created["description"] = json!("A new API token: its fields and the token, shown only here.");
    created["properties"]["token"] = json!({"type": "string", "description": "The API token."});
    if let Some(required) = created["required"].as_array_mut() {
        required.push(json!("token"));
    }
    s.insert("ApiTokenCreated".to_owned(), created);
    // A policy change is the policy's fields plus the policy again and
    // the count of hosts whose configuration changed.
    let mut change = s["Policy"].clone();
    change["description"] = json!("The stored policy (its fields, and again under `policy`) and how many hosts' effective configuration changed.");
    change["properties"]["policy"] = reference("Policy");
    change["properties"]["hosts_affected"] = json!({"type": "integer", "minimum": 0});
    if let Some(required) = change["required"].as_array_mut() {
        required.extend([json!("policy"), json!("hosts_affected")]);
    }
    s.insert("PolicyChange".to_owned(), change);
    // A group of the effective configuration is the group plus its origin.
    let mut effective = s["SourceGroup"].clone();
    effective["description"] = json!("A source group of the host's effective configuration.");
    effective["properties"]["origin"] =
        json!({"type": "string", "description": "`host`, or `policy:<name>`."});
    if let Some(required) = effective["required"].as_array_mut() {
        required.push(json!("origin"));
    }
    s.insert("EffectiveSourceGroup".to_owned(), effective);
    s["EffectiveConfig"]["properties"]["source_groups"] =
        json!({"type": "array", "items": reference("EffectiveSourceGroup")});

    let requests = [
        derived::<session::LoginRequest>(),
        derived::<users::CreateRequest>(),
        derived::<users::PatchRequest>(),
        derived::<hosts::PatchRequest>(),
        derived::<repository::PutRequest>(),
        derived::<repositories::CreateRequest>(),
        derived::<repositories::UpdateRequest>(),
        derived::<source_groups::RetentionBody>(),
        derived::<source_groups::GroupRequest>(),
        derived::<source_groups::DumpBody>(),
        derived::<super::options::OptionsBody>(),
        derived::<schedules::ScheduleRequest>(),
        derived::<jobs::CreateRequest>(),
        derived::<enrollment_tokens::CreateRequest>(),
        derived::<api_tokens::CreateRequest>(),
        derived::<super::policies::PolicyRequest>(),
        derived::<super::bulk::SelectorBody>(),
        derived::<super::bulk::BulkRequest>(),
        derived::<super::bulk::BulkCancelRequest>(),
    ];
    s.extend(requests.map(|(name, schema)| (name.to_owned(), schema)));

    for (list, item) in [
        ("UserList", "User"),
        ("HostList", "Host"),
        ("SharedRepositoryList", "SharedRepository"),
        ("SourceGroupList", "SourceGroup"),
        ("ScheduleList", "Schedule"),
        ("JobList", "Job"),
        ("SnapshotList", "Snapshot"),
        ("RepoStatsList", "RepoStats"),
        ("MissedRunList", "MissedRun"),
        ("EnrollmentTokenList", "EnrollmentToken"),
        ("ApiTokenList", "ApiToken"),
        ("PolicyList", "Policy"),
        ("AuditList", "AuditEntry"),
        ("CatalogSearchResult", "CatalogHit"),
    ] {
        s.insert(list.to_owned(), list_of(item));
    }
    // A folder page is a list with whether it comes from the catalog.
    let mut tree = list_of("TreeEntry");
    tree["properties"]["catalogued"] = json!({
        "type": "boolean",
        "description": "From a complete catalog (false: listed live by the agent, or its cache).",
    });
    if let Some(required) = tree["required"].as_array_mut() {
        required.push(json!("catalogued"));
    }
    s.insert("SnapshotTree".to_owned(), tree);

    let string = json!({"type": "string"});
    let text = |description: &str| json!({"type": "string", "description": description});
    let written = json!({
        "Error": {
            "type": "object",
            "properties": {"error": {
                "type": "object",
                "properties": {
                    "code": text("A snake_case code such as not_found or validation_failed."),
                    "message": text("A sentence for humans; names the field at fault."),
                },
                "required": ["code", "message"],
                "additionalProperties": false,
            }},
            "required": ["error"],
            "additionalProperties": false,
        },
        "OpenApiDocument": {"type": "object", "additionalProperties": true},
        "EnrollRequest": {
            "type": "object",
            "properties": {
                "token": {"type": "string", "writeOnly": true, "description": "The one-time enrolment token."},
                "hostname": string,
                "os": {"type": "string", "enum": [protocol::OS_LINUX, protocol::OS_WINDOWS]},
                "arch": {"type": "string", "enum": [protocol::ARCH_AMD64, protocol::ARCH_ARM64]},
            },
            "required": ["token", "hostname", "os", "arch"],
            "additionalProperties": false,
        },
        "EnrollResponse": {
            "type": "object",
            "properties": {
                "host_id": string,
                "agent_token": text("The agent's token; shown once."),
            },
            "required": ["host_id", "agent_token"],
            "additionalProperties": false,
        },
    });
    if let Value::Object(written) = written {
        s.extend(written);
    }
    s.extend(super::notifications::schemas());
    s.extend(super::health::schemas());
    s.extend(super::discovery::schemas());
    s.extend(super::config::schemas());
    s.values_mut().for_each(plain_links);
    s
}

/// Descriptions come from doc comments: `[`X`]` (a rustdoc link) reads `X`.
fn plain_links(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(text)) = map.get_mut("description") {
                *text = text.replace("[`", "`").replace("`]", "`");
            }
            map.values_mut().for_each(plain_links);
        }
        Value::Array(items) => items.iter_mut().for_each(plain_links),
        _ => {}
    }
}

// Field schemas for `#[schema(schema_with = ...)]`: text fields that hold
// one of a fixed set of values.

fn one_of<'a>(values: impl IntoIterator<Item = &'a str>) -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::String)
        .enum_values(Some(values))
        .build()
}

fn or_null(mut schema: Object) -> Object {
    schema.nullable = true;
    schema
}

pub(super) fn role() -> Object {
    one_of(Role::ALL.map(Role::as_str))
}

pub(super) fn role_or_null() -> Object {
    or_null(role())
}

pub(super) fn job_kind() -> Object {
    one_of(JobKind::ALL.iter().map(|k| k.as_str()))
}

pub(super) fn schedule_kind() -> Object {
    one_of(
        crate::protocol::ScheduleKind::ALL
            .iter()
            .map(|k| k.as_str()),
    )
}

pub(super) fn restore_overwrite() -> Object {
    one_of(
        crate::protocol::RestoreOverwrite::ALL
            .iter()
            .map(|m| m.as_str()),
    )
}

pub(super) fn job_status() -> Object {
    one_of(JobStatus::ALL.iter().map(|s| s.as_str()))
}

pub(super) fn job_trigger() -> Object {
    one_of(JobTrigger::ALL.iter().map(|t| t.as_str()))
}

pub(super) fn log_stream() -> Object {
    one_of(LogStream::ALL.iter().map(|l| l.as_str()))
}

/// `Host.status`.
pub(super) fn host_status() -> Object {
    one_of(["online", "offline"])
}

/// `Me.auth`.
pub(super) fn auth_kind() -> Object {
    one_of(["session", "api_token"])
}

/// `CancelResult.outcome`.
pub(super) fn cancel_outcome() -> Object {
    one_of(["cancelled", "cancel_requested"])
}

/// `RepoStats.lock_state`.
pub(super) fn lock_state_or_null() -> Object {
    or_null(one_of(LockState::ALL.iter().map(|l| l.as_str())))
}

#[cfg(test)]
mod tests;
