//! Issue 14 §1: a policy's `health_checks`. Every host the policy matches
//! runs them besides its own (its own check of a name wins); creating,
//! changing or deleting the policy and changing a host's labels push the
//! merged list to the hosts concerned, and the results of checks a host no
//! longer runs go. A policy's broken check is a 400 naming
//! `health_checks[i].field`. The host page lists each check with where it
//! comes from and, for operators, a form holding the host's own checks;
//! the policy form holds the policy's.

use reqwest::{Method, StatusCode};
use restic_manager::protocol::{HealthReport, CAPABILITY_HEALTH};
use serde_json::{json, Value};

use crate::common::agent::{self as scripted, TestAgent};
use crate::common::api::{self, assert_error, call};
use crate::common::e2e;
use crate::common::fleet::{self, add_user};
use crate::common::server::{spawn_app, TestApp};
use crate::health::{expect_config_push, expect_health_set, put_checks, result, web_check};

async fn send(app: &TestApp, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    call(app, &app.admin_token, method, path, Some(body)).await
}

/// The checks of the next push (`config.update`, `schedule.set`,
/// `health.set`) as (name, target) pairs.
async fn next_checks(agent: &mut TestAgent) -> Vec<(String, String)> {
    expect_config_push(agent).await;
    expect_health_set(agent)
        .await
        .checks
        .into_iter()
        .map(|c| (c.name, c.target))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect()
}

fn db_check() -> Value {
    json!({"name": "db", "type": "tcp", "target": "127.0.0.1:5432", "interval_seconds": 10, "timeout_seconds": 2})
}

/// A policy for `env=prod` with these checks.
fn policy(checks: Value) -> Value {
    json!({"name": "prod-health", "selector": {"labels": {"env": "prod"}}, "health_checks": checks})
}

/// A host with its own `web` check and a policy with `web` and `db`: the
/// agent runs its own `web` and the policy's `db`; a result of `db` is
/// kept; the policy's change, a label change and the policy's deletion
/// each push the new list, and `db`'s result goes with it.
#[actix_web::test]
async fn policy_checks_merge_with_the_hosts_own_and_follow_changes() {
    let app = spawn_app().await;
    let host = scripted::enroll(&app, "web-1").await;
    let host_path = format!("/hosts/{}", host.host_id);
    let (status, body) = send(
        &app,
        Method::PATCH,
        &host_path,
        json!({"labels": {"env": "prod"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let own = "http://127.0.0.1:1/own";
    assert_eq!(
        put_checks(&app, &host.host_id, json!([web_check(own)]))
            .await
            .0,
        StatusCode::OK
    );

    let mut agent = TestAgent::connect(&app, &host).await.unwrap();
    let mut hello = scripted::hello("web-1");
    hello
        .capabilities
        .get_or_insert_with(Vec::new)
        .push(CAPABILITY_HEALTH.to_owned());
    agent.send(hello).await;
    assert_eq!(next_checks(&mut agent).await, pairs(&[("web", own)]));

    // The policy's `web` loses to the host's own; its `db` is added.
    let (status, body) = send(
        &app,
        Method::POST,
        "/policies",
        policy(json!([web_check("http://127.0.0.1:1/policy"), db_check()])),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["hosts_affected"], 1, "{body}");
    assert_eq!(body["policy"]["health_checks"][1]["name"], "db", "{body}");
    let policy_id = body["id"].as_str().unwrap().to_owned();
    let merged = pairs(&[("web", own), ("db", "127.0.0.1:5432")]);
    assert_eq!(next_checks(&mut agent).await, merged);
    let effective = api::get(
        &app,
        &app.admin_token,
        &format!("{host_path}/effective-config"),
    )
    .await
    .1;
    let origins: Vec<(&str, &str)> = effective["health_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["origin"].as_str().unwrap()))
        .collect();
    assert_eq!(
        origins,
        [("web", "host"), ("db", "policy:prod-health")],
        "{effective}"
    );
    // The host's own list is still its own.
    let own_list = api::get(
        &app,
        &app.admin_token,
        &format!("{host_path}/health-checks"),
    )
    .await;
    assert_eq!(own_list.1, json!([web_check(own)]));

    // A result of the policy's check is kept.
    agent
        .send(HealthReport {
            results: vec![result("db", false, 3), result("web", true, 1)],
        })
        .await;
    let health = format!("{host_path}/health");
    e2e::wait_for("db's result stored", async || {
        let body = e2e::get(&app, &health).await;
        (body["items"].as_array()?.len() == 2).then_some(())
    })
    .await;

    // The same policy again changes nothing and pushes nothing.
    let same = send(
        &app,
        Method::PUT,
        &format!("/policies/{policy_id}"),
        policy(json!([web_check("http://127.0.0.1:1/policy"), db_check()])),
    )
    .await;
    assert_eq!(same.1["hosts_affected"], 0, "{}", same.1);

    // Without `db`: pushed, and db's result is gone once answered.
    let (status, body) = send(
        &app,
        Method::PUT,
        &format!("/policies/{policy_id}"),
        policy(json!([web_check("http://127.0.0.1:1/policy")])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hosts_affected"], 1, "{body}");
    assert_eq!(next_checks(&mut agent).await, pairs(&[("web", own)]));
    let items = e2e::get(&app, &health).await["items"].clone();
    let names: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, ["web"], "{items}");

    // `db` back; the host leaves and rejoins `env=prod` by its labels.
    let (status, body) = send(
        &app,
        Method::PUT,
        &format!("/policies/{policy_id}"),
        policy(json!([db_check()])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(next_checks(&mut agent).await, merged);
    let relabel = |env: &'static str| {
        send(
            &app,
            Method::PATCH,
            &host_path,
            json!({"labels": {"env": env}}),
        )
    };
    assert_eq!(relabel("dev").await.0, StatusCode::OK);
    assert_eq!(next_checks(&mut agent).await, pairs(&[("web", own)]));
    assert_eq!(relabel("prod").await.0, StatusCode::OK);
    assert_eq!(next_checks(&mut agent).await, merged);

    // Deleted: the host keeps its own only.
    let (status, _) = call(
        &app,
        &app.admin_token,
        Method::DELETE,
        &format!("/policies/{policy_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(next_checks(&mut agent).await, pairs(&[("web", own)]));
    agent.close().await;
}

/// A policy's broken check is refused naming `health_checks[i].field`,
/// and nothing is stored.
#[actix_web::test]
async fn policy_health_check_errors_name_the_field() {
    let app = spawn_app().await;
    let short = json!({"name": "web", "type": "http", "target": "http://x/", "interval_seconds": 5, "timeout_seconds": 1});
    let mut unknown = db_check();
    unknown["every"] = json!(3);
    let cases = [
        (json!([short]), "health_checks[0].interval_seconds"),
        (json!([db_check(), unknown]), "health_checks[1].every"),
        (json!([db_check(), db_check()]), "health_checks[1].name"),
    ];
    for (checks, field) in cases {
        let got = send(&app, Method::POST, "/policies", policy(checks.clone())).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
        assert!(message.starts_with(field), "{checks} → {message}");
    }
    // Not a list at all: the body's shape is wrong (400 naming it).
    let got = send(
        &app,
        Method::POST,
        "/policies",
        policy(json!({"name": "db"})),
    )
    .await;
    let message = assert_error(&got, StatusCode::BAD_REQUEST, "bad_request");
    assert!(message.starts_with("health_checks: "), "{message}");
    let list = api::get(&app, &app.admin_token, "/policies").await.1;
    assert_eq!(list["items"], json!([]), "{list}");
}

/// The part of `html` from `marker` to the end of its form.
fn form_of<'a>(html: &'a str, marker: &str) -> &'a str {
    let start = html.find(marker).unwrap_or_else(|| panic!("no {marker}"));
    let rest = &html[start..];
    &rest[..rest.find("</form>").unwrap_or(rest.len())]
}

/// The host page shows its own and its policy's checks, each with its
/// origin; an operator gets the edit form holding the host's own checks
/// only (plus a blank one), whose PUT is checked as the API's; the policy
/// page's form holds the policy's checks; a viewer gets no form.
#[actix_web::test]
async fn host_page_and_policy_form_edit_health_checks() {
    let app = spawn_app().await;
    let host = scripted::enroll(&app, "web-1").await;
    let host_path = format!("/hosts/{}", host.host_id);
    send(
        &app,
        Method::PATCH,
        &host_path,
        json!({"labels": {"env": "prod"}}),
    )
    .await;
    put_checks(
        &app,
        &host.host_id,
        json!([web_check("http://127.0.0.1:1/own")]),
    )
    .await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/policies",
        policy(json!([web_check("http://127.0.0.1:1/policy"), db_check()])),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let policy_id = body["id"].as_str().unwrap().to_owned();

    let password = add_user(&app, "olga", restic_manager::auth::Role::Operator).await;
    let operator = api::login(&app, "olga", &password).await;
    let (status, html) = fleet::page(&app, &operator, &host_path).await;
    assert_eq!(status, 200);
    let table = &html[html.find(r#"id="health-table""#).unwrap()..];
    let db_row = &table[table.find(r#"data-check="db""#).unwrap()..];
    assert!(
        db_row[..db_row.find("</tr>").unwrap()].contains("policy prod-health"),
        "{db_row}"
    );
    let web_row = &table[table.find(r#"data-check="web""#).unwrap()..];
    let web_row = &web_row[..web_row.find("</tr>").unwrap()];
    assert!(
        web_row.contains("this host") && web_row.contains("/own"),
        "{web_row}"
    );

    let form = form_of(&html, r#"id="health-checks-form""#);
    assert!(form.contains(r#"data-form="health-checks""#), "{form}");
    assert!(form.contains(r#"data-method="PUT""#), "{form}");
    let api_path = format!("{host_path}/health-checks");
    assert!(
        form.contains(&format!(r#"data-path="/api/v1{api_path}""#)),
        "{form}"
    );
    assert_eq!(
        form.matches("data-health-check").count(),
        2,
        "own + blank: {form}"
    );
    assert!(form.contains(r#"value="http://127.0.0.1:1/own""#), "{form}");
    assert!(
        form.contains(r#"value="30""#) && form.contains(r#"value="5""#),
        "{form}"
    );
    assert!(
        !form.contains("/policy") && !form.contains("5432"),
        "policy checks stay out: {form}"
    );

    // What the form sends: a bad interval is refused naming it, nothing
    // stored; a good list replaces the host's own.
    let mut bad = web_check("http://127.0.0.1:1/own");
    bad["interval_seconds"] = json!(5);
    let (status, answer) =
        fleet::call(&app, &operator, Method::PUT, &api_path, Some(json!([bad]))).await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("[0].interval_seconds"), "{message}");
    let tcp = json!({"name": "ssh", "type": "tcp", "target": "127.0.0.1:22", "interval_seconds": 60, "timeout_seconds": 3});
    let (status, answer) =
        fleet::call(&app, &operator, Method::PUT, &api_path, Some(json!([tcp]))).await;
    assert_eq!(status, 200, "{answer}");
    let (_, html) = fleet::page(&app, &operator, &host_path).await;
    let form = form_of(&html, r#"id="health-checks-form""#);
    assert!(
        form.contains(r#"value="ssh""#) && !form.contains("/own"),
        "{form}"
    );
    // The policy's `web` is no longer shadowed.
    assert!(html.contains("/policy"), "the policy's web shows");

    let (_, html) = fleet::page(&app, &operator, &format!("/policies/{policy_id}")).await;
    let form = form_of(&html, r#"id="policy-form""#);
    assert!(form.contains(r#"id="policy-health-checks""#), "{form}");
    assert!(form.contains(r#"value="127.0.0.1:5432""#), "{form}");
    assert!(
        form.contains(r#"value="http://127.0.0.1:1/policy""#),
        "{form}"
    );

    let password = add_user(&app, "vera", restic_manager::auth::Role::Viewer).await;
    let viewer = api::login(&app, "vera", &password).await;
    let (_, html) = fleet::page(&app, &viewer, &host_path).await;
    assert!(html.contains(r#"id="health-table""#));
    assert!(!html.contains("health-checks-form"), "no form for a viewer");
}
