#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! The OpenAPI document against the running server: every route the
//! server registers (the route table `api::endpoints()`, which is also what
//! `api::routes` registers) is documented and every documented method and
//! path is served (a probe never hits the unknown-route 404 or a 405),
//! other methods on documented paths are 405, and real answers validate
//! against the documented schemas.

use std::collections::BTreeSet;

use crate::common::api::*;
use crate::common::server::{client, spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use restic_manager::http::api::{self, table::Verb, NO_ROUTE_MESSAGE};
use serde_json::{json, Value};

pub(crate) async fn document(app: &TestApp) -> Value {
    let resp = client().get(app.api("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    resp.json().await.unwrap()
}

/// (method, path) of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |verb| (verb.to_uppercase(), path.clone()))
        })
        .collect()
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap()
}

/// Sends `method` to a documented path with every parameter set to `x`.
async fn probe(app: &TestApp, method: Method, path: &str) -> (StatusCode, Value) {
    let concrete: String = path
        .split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect::<Vec<_>>()
        .join("/");
    let mut req = client()
        .request(method.clone(), app.api(&concrete))
        .bearer_auth(&app.admin_token);
    if method != Method::GET && method != Method::DELETE {
        req = req.json(&json!({}));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The document is served without credentials as OpenAPI 3.0 with both security schemes and the error schema.
#[actix_web::test]
async fn document_is_public_openapi_3() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["cookieAuth"]["in"], "cookie");
    assert_eq!(schemes["cookieAuth"]["name"], "rm_session");
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["error"]));
    // Login is public; user management needs the admin role and documents 403.
    assert_eq!(doc["paths"]["/auth/login"]["post"]["security"], json!([]));
    let add_user = &doc["paths"]["/users"]["post"];
    assert_eq!(add_user["x-required-role"], "admin");
    assert!(add_user["responses"]["403"].is_object());
    assert_eq!(
        add_user["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/UserCreate"
    );
    let jobs = &doc["paths"]["/jobs"]["get"]["parameters"];
    let names: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["host_id", "status", "kind", "since", "limit", "offset"] {
        assert!(names.contains(&name), "{names:?}");
    }
}

/// Every registered route is documented and every documented one is served; other methods on a documented path are 405; an undocumented path is the JSON 404.
#[actix_web::test]
async fn document_matches_the_served_routes() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let in_doc = documented(&doc);

    // The registration's list: `api::routes` registers exactly `api::endpoints()`.
    let registered: BTreeSet<(String, String)> = api::endpoints()
        .iter()
        .map(|e| (e.verb.method().to_string(), e.path.to_owned()))
        .collect();
    assert_eq!(registered, in_doc);
    // API.md's routes are all there.
    for (m, p) in [
        ("POST", "/auth/login"),
        ("POST", "/auth/logout"),
        ("GET", "/me"),
        ("POST", "/agent/enroll"),
        ("GET", "/agent/ws"),
        ("GET", "/hosts"),
        ("PATCH", "/hosts/{id}"),
        ("DELETE", "/hosts/{id}"),
        ("PUT", "/hosts/{id}/repository"),
        ("PUT", "/hosts/{id}/source-groups/{gid}"),
        ("PUT", "/hosts/{id}/schedules/{sid}"),
        ("POST", "/hosts/{id}/jobs"),
        ("GET", "/jobs/{id}/logs"),
        ("POST", "/jobs/{id}/cancel"),
        ("GET", "/hosts/{id}/snapshots"),
        ("GET", "/hosts/{id}/repo-stats"),
        ("GET", "/missed-runs"),
        ("POST", "/enrollment-tokens"),
        ("DELETE", "/enrollment-tokens/{id}"),
        ("PATCH", "/users/{id}"),
        ("DELETE", "/api-tokens/{id}"),
        ("GET", "/audit"),
        ("GET", "/openapi.json"),
    ] {
        assert!(
            in_doc.contains(&(m.to_owned(), p.to_owned())),
            "{m} {p} missing"
        );
    }

    // Every documented operation is served: never the unknown-route 404, never 405.
    for (m, path) in &in_doc {
        let (status, body) = probe(&app, method(m), path).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}: {body}");
        let unknown =
            status == StatusCode::NOT_FOUND && body["error"]["message"] == NO_ROUTE_MESSAGE;
        assert!(!unknown, "{m} {path} is documented but not served");
        if status.is_client_error() || status.is_server_error() {
            assert!(
                body["error"]["code"].is_string(),
                "{m} {path}: {status} without the error body: {body}"
            );
        }
        assert!(!status.is_server_error(), "{m} {path}: {status} {body}");
    }

    // No other method is served on a documented path.
    let paths: BTreeSet<&String> = in_doc.iter().map(|(_, p)| p).collect();
    for path in paths {
        for verb in Verb::ALL {
            let m = verb.method().to_string();
            if in_doc.contains(&(m.clone(), path.clone())) {
                continue;
            }
            let (status, body) = probe(&app, method(&m), path).await;
            assert_eq!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{m} {path} is served but not documented: {body}"
            );
            assert_eq!(body["error"]["code"], "method_not_allowed");
        }
    }

    // An undocumented path is the unknown-route 404.
    let (status, body) = probe(&app, Method::GET, "/hosts/{id}/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], NO_ROUTE_MESSAGE);
}

// ---------------------------------------------------------------------------
// Schema conformance
// ---------------------------------------------------------------------------

/// Checks `value` against an OpenAPI 3.0 schema (the subset the document
/// uses); returns the first mismatch with its JSON path.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return check(doc, &doc["components"]["schemas"][name], value, at);
    }
    if value.is_null() {
        return if schema["nullable"] == true {
            Ok(())
        } else {
            Err(format!("{at}: null but not nullable"))
        };
    }
    if let Some(all) = schema["allOf"].as_array() {
        return all.iter().try_for_each(|s| check(doc, s, value, at));
    }
    let ok = match schema["type"].as_str() {
        Some("object") => {
            let Some(object) = value.as_object() else {
                return Err(format!("{at}: expected an object, got {value}"));
            };
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                if !object.contains_key(name) {
                    return Err(format!("{at}: missing required {name}"));
                }
            }
            let properties = schema["properties"].as_object();
            for (key, field) in object {
                match properties.and_then(|p| p.get(key)) {
                    Some(s) => check(doc, s, field, &format!("{at}.{key}"))?,
                    None if schema["additionalProperties"] == false => {
                        return Err(format!("{at}: undocumented field {key}"))
                    }
                    None => {}
                }
            }
            true
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                return Err(format!("{at}: expected an array, got {value}"));
            };
            for (i, item) in items.iter().enumerate() {
                check(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
            true
        }
        Some("string") => {
            let Some(text) = value.as_str() else {
                return Err(format!("{at}: expected a string, got {value}"));
            };
            if let Some(values) = schema["enum"].as_array() {
                if !values.iter().any(|v| v == text) {
                    return Err(format!("{at}: {text:?} is not one of {values:?}"));
                }
            }
            if schema["format"] == "date-time"
                && chrono::DateTime::parse_from_rfc3339(text).is_err()
            {
                return Err(format!("{at}: {text:?} is not RFC 3339"));
            }
            true
        }
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{at}: {value} is not a {}", schema["type"]))
    }
}

pub(crate) fn conforms(doc: &Value, schema: &str, value: &Value) {
    let reference = json!({ "$ref": format!("#/components/schemas/{schema}") });
    if let Err(e) = check(doc, &reference, value, schema) {
        panic!("{e}\n{value:#}");
    }
}

/// Real answers of every resource (with data in them) validate against their documented schemas, errors included.
#[actix_web::test]
async fn answers_match_their_schemas() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let t = &app.admin_token;
    let host = create_host(&app, "schema-host").await;

    let me = get(&app, t, "/me").await;
    conforms(&doc, "Me", &me.1);
    conforms(&doc, "Version", &get(&app, t, "/version").await.1);
    let browser = login(&app, "admin", &app.admin_password).await;
    let me = browser.get(&app, "/me").send().await.unwrap();
    conforms(&doc, "Me", &me.json().await.unwrap());

    let put = call(
        &app,
        t,
        Method::PUT,
        &format!("/hosts/{host}/repository"),
        Some(json!({"url": "/srv/restic", "password": "pw-pw-pw"})),
    )
    .await;
    conforms(&doc, "Repository", &put.1);
    let group = call(
        &app,
        t,
        Method::POST,
        &format!("/hosts/{host}/source-groups"),
        Some(json!({"name": "etc", "includes": ["/etc"], "retention_policy": {"keep_daily": 7}})),
    )
    .await;
    conforms(&doc, "SourceGroup", &group.1);
    let schedule = call(
        &app,
        t,
        Method::POST,
        &format!("/hosts/{host}/schedules"),
        Some(json!({"cron_expr": "0 2 * * *", "source_groups": ["etc"]})),
    )
    .await;
    conforms(&doc, "Schedule", &schedule.1);
    let job = call(
        &app,
        t,
        Method::POST,
        &format!("/hosts/{host}/jobs"),
        Some(json!({"kind": "backup", "source_group": "etc"})),
    )
    .await;
    conforms(&doc, "Job", &job.1);
    let job_id = job.1["id"].as_str().unwrap().to_owned();
    let cancel = call(
        &app,
        t,
        Method::POST,
        &format!("/jobs/{job_id}/cancel"),
        None,
    )
    .await;
    conforms(&doc, "CancelResult", &cancel.1);
    let token = call(
        &app,
        t,
        Method::POST,
        "/enrollment-tokens",
        Some(json!({"ttl_seconds": 600})),
    )
    .await;
    conforms(&doc, "EnrollmentTokenCreated", &token.1);
    let user = call(
        &app,
        t,
        Method::POST,
        "/users",
        Some(json!({"username": "gina", "password": "gina-password", "role": "operator"})),
    )
    .await;
    conforms(&doc, "User", &user.1);
    let api_token = call(
        &app,
        t,
        Method::POST,
        "/api-tokens",
        Some(json!({"name": "schema", "role": "viewer", "ttl_seconds": 600})),
    )
    .await;
    conforms(&doc, "ApiTokenCreated", &api_token.1);

    for (path, schema) in [
        ("/hosts".to_owned(), "HostList"),
        (format!("/hosts/{host}"), "Host"),
        (format!("/hosts/{host}/repository"), "Repository"),
        (format!("/hosts/{host}/source-groups"), "SourceGroupList"),
        (format!("/hosts/{host}/schedules"), "ScheduleList"),
        (format!("/hosts/{host}/snapshots"), "SnapshotList"),
        (format!("/hosts/{host}/repo-stats"), "RepoStatsList"),
        ("/jobs".to_owned(), "JobList"),
        (format!("/jobs/{job_id}"), "Job"),
        (format!("/jobs/{job_id}/logs"), "LogPage"),
        ("/missed-runs".to_owned(), "MissedRunList"),
        ("/enrollment-tokens".to_owned(), "EnrollmentTokenList"),
        ("/users".to_owned(), "UserList"),
        ("/api-tokens".to_owned(), "ApiTokenList"),
        ("/audit".to_owned(), "AuditList"),
        ("/hosts/nope".to_owned(), "Error"),
        ("/jobs?status=done".to_owned(), "Error"),
    ] {
        let (status, body) = get(&app, t, &path).await;
        assert!(
            status.is_success() || schema == "Error",
            "{path}: {status} {body}"
        );
        conforms(&doc, schema, &body);
    }
    let audit = get(&app, t, "/audit").await;
    assert!(audit.1["total"].as_i64().unwrap() >= 7);

    // The checker does catch mismatches.
    let user = json!({"$ref": "#/components/schemas/User"});
    let mut wrong = get(&app, t, "/me").await.1["user"].clone();
    assert!(check(&doc, &user, &wrong, "User").is_ok());
    wrong["role"] = json!("root");
    assert!(check(&doc, &user, &wrong, "User").is_err());
    wrong["role"] = json!("admin");
    wrong["password_hash"] = json!("x");
    assert!(check(&doc, &user, &wrong, "User").is_err());
}

// ---------------------------------------------------------------------------
// Roles, driven by the document
// ---------------------------------------------------------------------------

/// A minimal body that decodes against `schema`: every required field with
/// a value of its type.
fn sample(doc: &Value, schema: &Value) -> Value {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return sample(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(first) = schema["allOf"].as_array().and_then(|a| a.first()) {
        return sample(doc, first);
    }
    if let Some(values) = schema["enum"].as_array() {
        return values[0].clone();
    }
    match schema["type"].as_str() {
        Some("object") => {
            let mut out = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                out.insert(name.to_owned(), sample(doc, &schema["properties"][name]));
            }
            Value::Object(out)
        }
        Some("array") => json!([sample(doc, &schema["items"])]),
        Some("integer") => json!(60),
        Some("number") => json!(1.0),
        Some("boolean") => json!(true),
        _ => json!("x"),
    }
}

/// Every operation that needs a role is refused (403 forbidden) to each lower role, with a well-formed body, before anything else happens; allowed reads are not refused.
#[actix_web::test]
async fn every_operation_refuses_lower_roles() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let viewer = user_with_token(
        &app,
        "vic",
        restic_manager::auth::Role::Viewer,
        "viewer-pass",
    )
    .await;
    let operator = user_with_token(
        &app,
        "olga",
        restic_manager::auth::Role::Operator,
        "operator-pass",
    )
    .await;
    let mut refused = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (verb, op) in item.as_object().unwrap() {
            let Some(role) = op["x-required-role"].as_str() else {
                continue;
            };
            let lower: &[(&str, &String)] = match role {
                "admin" => &[("viewer", &viewer), ("operator", &operator)],
                "operator" => &[("viewer", &viewer)],
                _ => &[],
            };
            let body = op["requestBody"]["content"]["application/json"]["schema"]
                .is_object()
                .then(|| {
                    sample(
                        &doc,
                        &op["requestBody"]["content"]["application/json"]["schema"],
                    )
                });
            let concrete: String = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            for (who, token) in lower {
                let got = call(
                    &app,
                    token,
                    method(&verb.to_uppercase()),
                    &concrete,
                    body.clone(),
                )
                .await;
                assert_eq!(
                    got.0,
                    StatusCode::FORBIDDEN,
                    "{verb} {path} as {who} with {body:?}: {}",
                    got.1
                );
                assert_eq!(got.1["error"]["code"], "forbidden", "{verb} {path}");
                refused += 1;
            }
            if role == "viewer" && verb == "get" {
                let got = call(&app, &viewer, Method::GET, &concrete, None).await;
                assert_ne!(got.0, StatusCode::FORBIDDEN, "{path} refused a viewer");
            }
        }
    }
    // 10 operator changes (x1) and 12 admin operations (x2) at the time of
    // writing (the audit log is readable by every role).
    assert!(refused >= 34, "only {refused} refusals checked");
    // Nothing was changed by a refused request: no audit row names either user.
    let rows = db(&app, |c| {
        restic_manager::store::audit::list(
            c,
            &restic_manager::store::audit::AuditFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .unwrap()
        .items
    })
    .await;
    let by_them: Vec<_> = rows
        .iter()
        .filter(|r| r.actor == "vic" || r.actor == "olga")
        .map(|r| r.action.clone())
        .collect();
    assert!(by_them.is_empty(), "{by_them:?}");
}
