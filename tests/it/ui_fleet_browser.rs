//! The fleet pages in a real headless Chromium (issue 12): an operator
//! creates a policy on the Policies page (a bad cron expression is shown
//! next to the form, what was typed stays, nothing is stored; corrected,
//! the policy's page lists the labelled host it matches and not the
//! other), then on the host list checks two hosts and runs a backup on
//! them (one created, the other skipped with its reason, by name) and
//! cancels their jobs; the new pages fit a 400 px wide window.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::browser::{fill, wait_css, wait_js, wait_path_prefix, Browser};
use crate::common::fleet::{seed, Seed};
use crate::common::server::{client, spawn_app, TestApp};
use crate::ui_browser::{click, log_in, narrow_pages, text_of};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

/// How many policies the API lists.
async fn policy_count(app: &TestApp) -> i64 {
    let list: Value = client()
        .get(app.api("/policies"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["total"].as_i64().unwrap()
}

/// The value of the field matching `css`.
async fn value_of(c: &Client, css: &str) -> String {
    wait_css(c, css)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Waits until the element matching `css` has text containing `part`; returns the text.
async fn wait_text(c: &Client, css: &str, part: &str) -> String {
    let script = format!(
        "const el = document.querySelector({css:?});
         const t = el ? el.textContent : '';
         return t.includes({part:?}) ? t : null;"
    );
    wait_js(c, &format!("{css} to say {part:?}"), &script)
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

/// Policies page → policy matching a labelled host; host list → bulk run and cancel.
#[actix_web::test]
async fn policy_matches_labelled_host_and_bulk_actions_run() {
    let app = spawn_app().await;
    let ids = seed(
        &app,
        vec![
            Seed::new("pg-1", &[("role", "db")]).with_group("system"),
            Seed::new("web-1", &[("role", "web")]),
        ],
    )
    .await;
    let (db, web) = (&ids[0], &ids[1]);
    let browser = Browser::start().await;
    let c = &browser.client;
    log_in(c, &app, "/policies", "admin", &app.admin_password).await;

    // --- A policy with a bad cron expression: refused next to the form.
    fill(c, "#policy-name", "databases").await;
    fill(c, "#policy-selector", "role=db").await;
    let group = "#policy-groups fieldset:first-of-type";
    fill(c, &format!("{group} input[name=name]"), "pgdata").await;
    fill(
        c,
        &format!("{group} textarea[name=includes]"),
        "/var/lib/postgresql",
    )
    .await;
    let schedule = "#policy-schedules fieldset:first-of-type";
    fill(
        c,
        &format!("{schedule} input[name=cron_expr]"),
        "61 * * * *",
    )
    .await;
    fill(
        c,
        &format!("{schedule} input[name=source_groups]"),
        "pgdata",
    )
    .await;
    click(c, "#policy-submit").await;
    let error = wait_text(c, "#policy-error", "schedules[0].cron_expr").await;
    assert!(error.starts_with("schedules[0].cron_expr"), "{error}");
    assert_eq!(
        value_of(c, "#policy-name").await,
        "databases",
        "what was typed stays"
    );
    assert_eq!(
        value_of(c, &format!("{schedule} input[name=cron_expr]")).await,
        "61 * * * *"
    );
    assert_eq!(policy_count(&app).await, 0, "nothing stored");

    // --- Corrected: the policy's page lists the db host, not the web one.
    fill(c, &format!("{schedule} input[name=cron_expr]"), "0 3 * * *").await;
    click(c, "#policy-submit").await;
    let path = wait_path_prefix(c, "/policies/").await;
    let policy_id = path.trim_start_matches("/policies/").to_owned();
    assert!(!policy_id.is_empty());
    wait_css(c, &format!("#policy-host-list tr[data-host-id=\"{db}\"]")).await;
    let listed = c
        .find_all(Locator::Css("#policy-host-list tr[data-host-id]"))
        .await
        .unwrap()
        .len();
    assert_eq!(listed, 1, "only the db host matches");
    assert_eq!(policy_count(&app).await, 1);
    // The list counts it too.
    c.goto(&app.url("/policies")).await.unwrap();
    assert_eq!(
        text_of(c, &format!("tr[data-policy-id=\"{policy_id}\"] td.matched")).await,
        "1"
    );

    // --- Bulk: check both hosts, run a backup of "system".
    c.goto(&app.url("/hosts")).await.unwrap();
    click(c, &format!("input[data-bulk-host][value=\"{db}\"]")).await;
    click(c, &format!("input[data-bulk-host][value=\"{web}\"]")).await;
    fill(c, "#bulk-group", "system").await;
    click(c, "#bulk-run-submit").await;
    let summary = wait_text(c, "#bulk-summary", "Created").await;
    assert_eq!(summary, "Created 1 job.");
    let skipped = text_of(c, &format!("#bulk-skipped li[data-host-id=\"{web}\"]")).await;
    assert!(skipped.starts_with("web-1: "), "{skipped}");

    // --- Cancel their jobs (the confirmation answered yes).
    c.execute("window.confirm = () => true; return true;", vec![])
        .await
        .unwrap();
    click(c, "#bulk-cancel-submit").await;
    let summary = wait_text(c, "#bulk-summary", "Cancelled").await;
    assert!(summary.starts_with("Cancelled 1 job "), "{summary}");

    // --- The new pages fit a phone: no sideways scroll at 400 px.
    let shots = tempfile::tempdir().unwrap();
    let policy_path = format!("/policies/{policy_id}");
    narrow_pages(
        c,
        &app,
        shots.path(),
        &["/policies", &policy_path, "/repositories", "/hosts"],
    )
    .await;
    browser.close().await;
}

/// The admin API's answer to `method path` with `body`.
async fn admin_call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = client()
        .request(method, app.api(path))
        .bearer_auth(&app.admin_token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

/// Repositories page, a repository with 120 hosts attached: typing in the
/// maintenance host search fills the select from the host API with the
/// matching attached hosts (past the 50 the page names), one is picked
/// and saved, and the repository's `maintenance_host_id` is that host.
#[actix_web::test]
async fn maintenance_host_picked_through_the_search_field() {
    let app = spawn_app().await;
    let seeds: Vec<Seed> = (0..120)
        .map(|i| Seed::new(&format!("web-{i:03}"), &[]))
        .collect();
    let ids = seed(&app, seeds).await;
    let repo = admin_call(
        &app,
        reqwest::Method::POST,
        "/repositories",
        Some(json!({"name": "big", "url": "/srv/restic/big", "password": "pw-1"})),
    )
    .await;
    let big = repo["id"].as_str().unwrap().to_owned();
    let pool = app.state.pool.clone();
    let (hosts, repo_id) = (ids.clone(), big.clone());
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        for host in hosts {
            let now = restic_manager::store::now_ms();
            assert!(restic_manager::store::repositories::attach(
                &mut conn,
                &host.as_str().into(),
                &repo_id,
                now
            )
            .unwrap());
        }
    })
    .await
    .unwrap();
    // web-115: past the first 50, so only the search can offer it.
    let wanted = &ids[115];

    let browser = Browser::start().await;
    let c = &browser.client;
    log_in(c, &app, "/repositories", "admin", &app.admin_password).await;
    let row = format!("tr[data-repository-id=\"{big}\"]");
    click(c, &format!("{row} details.edit summary")).await;
    let select = format!("#r-{big}-maintenance");
    let option = format!("{select} option[value=\"{wanted}\"]");
    assert!(
        c.find(Locator::Css(&option)).await.is_err(),
        "web-115 is not among the first 50 named"
    );
    fill(c, &format!("#r-{big}-maintenance-search"), "web-11").await;
    let status = wait_text(c, &format!("#r-{big}-maintenance-found"), "hosts match").await;
    assert_eq!(status, "10 hosts match");
    assert_eq!(
        wait_css(c, &select)
            .await
            .attr("data-matches")
            .await
            .unwrap()
            .as_deref(),
        Some("10")
    );
    wait_css(c, &select)
        .await
        .select_by_value(wanted)
        .await
        .unwrap();
    click(c, &format!("#r-{big}-form button[type=submit]")).await;

    // Saved, the page reloads and names the host as the maintenance host.
    wait_css(
        c,
        &format!("{row} > td:nth-child(6) a[href=\"/hosts/{wanted}\"]"),
    )
    .await;
    let stored = admin_call(
        &app,
        reqwest::Method::GET,
        &format!("/repositories/{big}"),
        None,
    )
    .await;
    assert_eq!(stored["maintenance_host_id"], wanted.as_str(), "{stored}");
    browser.close().await;
}
