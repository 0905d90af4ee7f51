//! The fleet pages of the web UI over plain HTTP (issue 12): the host
//! list paged and filtered by several labels at 15,000 hosts, its bulk
//! forms for operators only; the Policies pages (list, matched hosts
//! paged, the edit form filled with the stored values) and the API calls
//! their forms make, bad input refused naming the field with nothing
//! stored; the Repositories page (secrets never rendered, leases and
//! `waiting_for`, delete refused while hosts use it); role checks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Instant;

use crate::common::api::{login, Browser};
use crate::common::fleet::{add_user, call, page, seed, Seed};
use crate::common::server::{spawn_app, TestApp};
use reqwest::Method;
use restic_manager::auth::Role;
use restic_manager::store;
use serde_json::{json, Value};

/// A POST the UI's script makes that must be a 400 whose message starts
/// with `field` (the field named first).
async fn refused(app: &TestApp, session: &Browser, path: &str, body: Value, field: &str) {
    let (status, answer) = call(app, session, Method::POST, path, Some(body)).await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.starts_with(field), "{message}");
}

/// Rows of the host list's table.
fn host_rows(html: &str) -> usize {
    html.matches("<tr data-host-id=").count()
}

/// The host list reads one page: at 15,000 hosts, filtered by two labels
/// (both must match) it answers quickly with 100 rows, the count and a
/// link to the next page carrying both labels; a viewer gets no bulk
/// controls, an operator a checkbox per row and both bulk forms.
#[actix_web::test]
async fn host_list_pages_and_filters_by_several_labels_at_15000_hosts() {
    let app = spawn_app().await;
    let hosts = (1..=15_000)
        .map(|i| {
            let env = if i % 2 == 0 { "prod" } else { "dev" };
            let role = if i % 3 == 0 { "db" } else { "web" };
            Seed::new(&format!("node-{i}"), &[("env", env), ("role", role)])
        })
        .collect();
    seed(&app, hosts).await;
    let admin = login(&app, "admin", &app.admin_password).await;

    let started = Instant::now();
    let (status, html) = page(&app, &admin, "/hosts").await;
    let first = started.elapsed();
    assert_eq!(status, 200);
    assert!(html.contains("15000 hosts match."), "the count");
    assert_eq!(host_rows(&html), 100, "one page");
    assert!(
        first.as_millis() < 3000,
        "the first page of 15,000 hosts took {first:?}"
    );

    let path = "/hosts?label=env%3Dprod&label=role%3Ddb";
    let (status, html) = page(&app, &admin, path).await;
    assert_eq!(status, 200);
    // Every sixth host is both prod and db.
    assert!(html.contains("2500 hosts match."), "both labels must match");
    assert_eq!(host_rows(&html), 100);
    assert!(html.contains(">node-6<") && !html.contains(">node-2<"));
    assert!(
        html.contains(r#"href="/hosts?offset=100&amp;label=env%3Dprod&amp;label=role%3Ddb""#),
        "the next page keeps both labels"
    );
    // Both labels are back in the filter form, with one more empty field.
    assert!(html.contains(r#"value="env=prod""#) && html.contains(r#"value="role=db""#));
    assert!(html.contains(r#"id="filter-label-2""#));
    let (_, last) = page(&app, &admin, &format!("{path}&offset=2400")).await;
    assert_eq!(host_rows(&last), 100);
    assert!(last.contains("← Previous") && !last.contains("Next →"));

    // An operator (the admin) gets the checkboxes and the bulk forms.
    assert!(html.contains(r#"id="bulk-run""#) && html.contains(r#"id="bulk-cancel""#));
    assert!(html.contains(r#"data-path="/api/v1/jobs/bulk""#));
    assert_eq!(html.matches("data-bulk-host").count(), 100);
    // A viewer sees the same hosts and no bulk control.
    let password = add_user(&app, "vera", Role::Viewer).await;
    let viewer = login(&app, "vera", &password).await;
    let (status, html) = page(&app, &viewer, path).await;
    assert_eq!(status, 200);
    assert_eq!(host_rows(&html), 100);
    assert!(!html.contains("bulk-run") && !html.contains("data-bulk-host"));
    assert!(
        !html.contains("data-change"),
        "no change control for a viewer"
    );

    // Bad filters are a 400 naming the parameter.
    let (status, html) = page(&app, &admin, "/hosts?label=env%3Dprod&label=nokey").await;
    assert_eq!(status, 400);
    assert!(html.contains("label: expected key=value"), "{html}");
    let (status, html) = page(&app, &admin, "/hosts?status=sideways").await;
    assert_eq!(status, 400);
    assert!(html.contains("status: expected"), "{html}");
}

/// The bulk forms' calls: a viewer is refused; an operator's run creates
/// the jobs it can and names each host skipped with its reason, one
/// audit row; an empty selection is a 400 naming `host_ids`.
#[actix_web::test]
async fn bulk_calls_from_the_host_list() {
    let app = spawn_app().await;
    let ids = seed(
        &app,
        vec![
            Seed::new("app-1", &[("env", "prod")]).with_group("system"),
            Seed::new("app-2", &[("env", "prod")]),
        ],
    )
    .await;
    let password = add_user(&app, "vera", Role::Viewer).await;
    let viewer = login(&app, "vera", &password).await;
    let body = json!({"host_ids": ids, "kind": "backup", "source_group": "system"});
    let (status, _) = call(
        &app,
        &viewer,
        Method::POST,
        "/jobs/bulk",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 403);

    let password = add_user(&app, "olga", Role::Operator).await;
    let operator = login(&app, "olga", &password).await;
    let (status, answer) = call(&app, &operator, Method::POST, "/jobs/bulk", Some(body)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["created"], 1);
    assert_eq!(answer["skipped"][0]["host_id"], ids[1].as_str());
    assert!(
        answer["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("system"),
        "{answer}"
    );
    let empty = json!({"host_ids": [], "kind": "backup", "source_group": "system"});
    refused(&app, &operator, "/jobs/bulk", empty, "host_ids:").await;
    let (status, answer) = call(
        &app,
        &operator,
        Method::POST,
        "/jobs/bulk-cancel",
        Some(json!({ "host_ids": ids })),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["cancelled"], 1);
    let admin = login(&app, "admin", &app.admin_password).await;
    let (_, audit) = call(
        &app,
        &admin,
        Method::GET,
        "/audit?action=job.bulk_create",
        None,
    )
    .await;
    assert_eq!(audit["total"], 1, "one audit row for the bulk run: {audit}");
}

/// The Policies pages: an invalid policy is refused naming the field and
/// nothing is stored; a valid one is listed with its selector and match
/// count, its page lists the matched hosts a page at a time and its edit
/// form holds the stored values; a viewer reads but gets no form and
/// cannot change; delete removes it.
#[actix_web::test]
async fn policies_pages_list_edit_match_and_refuse_bad_input() {
    let app = spawn_app().await;
    let mut hosts: Vec<Seed> = (1..=150)
        .map(|i| Seed::new(&format!("db-{i}"), &[("env", "prod"), ("role", "db")]))
        .collect();
    hosts.push(Seed::new("web-1", &[("env", "prod"), ("role", "web")]));
    seed(&app, hosts).await;
    let password = add_user(&app, "olga", Role::Operator).await;
    let operator = login(&app, "olga", &password).await;

    let (status, html) = page(&app, &operator, "/policies").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"id="no-policies""#));
    assert!(
        html.contains(r#"id="policy-form""#) && html.contains(r#"data-path="/api/v1/policies""#)
    );
    assert!(
        html.contains(r#"href="/policies" class="active""#),
        "the nav entry"
    );

    // What the form sends, with a bad cron expression: 400 naming it.
    let mut body = json!({
        "name": "databases",
        "selector": {"labels": {"role": "db"}},
        "source_groups": [{"name": "pg", "includes": ["/var/lib/postgresql"], "excludes": [],
                           "retention_policy": {"keep_daily": 7}}],
        "schedules": [{"cron_expr": "61 * * * *", "kind": "backup", "enabled": true, "source_groups": ["pg"]}],
        "repository_id": null
    });
    refused(
        &app,
        &operator,
        "/policies",
        body.clone(),
        "schedules[0].cron_expr",
    )
    .await;
    body["schedules"][0]["source_groups"] = json!(["nope"]);
    body["schedules"][0]["cron_expr"] = json!("0 3 * * *");
    refused(
        &app,
        &operator,
        "/policies",
        body.clone(),
        "schedules[0].source_groups",
    )
    .await;
    let (_, html) = page(&app, &operator, "/policies").await;
    assert!(html.contains(r#"id="no-policies""#), "nothing stored");

    body["schedules"][0]["source_groups"] = json!(["pg"]);
    let (status, answer) = call(&app, &operator, Method::POST, "/policies", Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();

    let (_, html) = page(&app, &operator, "/policies").await;
    assert!(html.contains(&format!(r#"href="/policies/{id}""#)));
    assert!(html.contains(r#"<span class="tag">role=db</span>"#));
    assert!(
        html.contains(&format!(r#"href="/policies/{id}#policy-hosts">150<"#)),
        "match count"
    );

    let (status, html) = page(&app, &operator, &format!("/policies/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("150 hosts match"), "{html}");
    assert_eq!(html.matches("<tr data-host-id=").count(), 100, "one page");
    assert!(!html.contains(">web-1<"), "web-1 is not a db");
    assert!(html.contains(&format!("/policies/{id}?offset=100#policy-hosts")));
    // The edit form holds the stored values.
    assert!(html.contains(r#"value="databases""#));
    assert!(html.contains(r#">role=db</textarea>"#));
    assert!(html.contains(r#"value="pg""#) && html.contains(r#"value="0 3 * * *""#));
    assert!(html.contains(&format!(r#"data-path="/api/v1/policies/{id}""#)));
    let (_, second) = page(&app, &operator, &format!("/policies/{id}?offset=100")).await;
    assert_eq!(second.matches("<tr data-host-id=").count(), 50);

    // A viewer reads both pages, gets no form, and cannot change.
    let password = add_user(&app, "vera", Role::Viewer).await;
    let viewer = login(&app, "vera", &password).await;
    for path in ["/policies".to_owned(), format!("/policies/{id}")] {
        let (status, html) = page(&app, &viewer, &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!html.contains("data-change"), "{path}: no change control");
        assert!(html.contains("databases"), "{path}");
    }
    let (status, _) = call(
        &app,
        &viewer,
        Method::DELETE,
        &format!("/policies/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 403);

    let (status, _) = page(&app, &operator, "/policies/nope").await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        &operator,
        Method::DELETE,
        &format!("/policies/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = page(&app, &operator, &format!("/policies/{id}")).await;
    assert_eq!(status, 404);
}

/// Creates a job of `kind` on `host` and asks for its lease on `repo`.
async fn job_with_lease(
    app: &TestApp,
    host: &str,
    repo: &str,
    kind: restic_manager::store::JobKind,
    mode: restic_manager::store::leases::Mode,
) -> (String, restic_manager::store::leases::Acquired) {
    use restic_manager::store::{self, models::NewJob, JobTrigger};
    let pool = app.state.pool.clone();
    let (host, repo) = (host.to_owned(), repo.to_owned());
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        let now = store::now_ms();
        let id = store::new_id();
        store::jobs::insert(
            &mut conn,
            &NewJob::new(id.clone(), host.clone(), kind, JobTrigger::Manual, now),
        )
        .unwrap();
        let got = store::leases::acquire(
            &mut conn,
            &id.as_str().into(),
            &host.as_str().into(),
            &repo,
            mode,
            now,
        )
        .unwrap();
        (id, got)
    })
    .await
    .unwrap()
}

/// The Repositories page: never a secret in the HTML (only set / not
/// set), the hosts attached, the current leases with why a job waits
/// (also on the waiting host's page); a bad create is a 400 naming the
/// field with nothing stored; delete is refused while hosts use it.
#[actix_web::test]
async fn repositories_page_hides_secrets_shows_leases_and_refuses_delete_in_use() {
    use restic_manager::store::leases::{Acquired, Mode};
    use restic_manager::store::JobKind;
    let app = spawn_app().await;
    let ids = seed(&app, vec![Seed::new("alpha", &[]), Seed::new("beta", &[])]).await;
    let password = add_user(&app, "olga", Role::Operator).await;
    let operator = login(&app, "olga", &password).await;

    let (status, html) = page(&app, &operator, "/repositories").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"id="no-repositories""#));
    assert!(html.contains(r#"data-form="shared-repository""#));

    let no_password = json!({"name": "fleet", "url": "/srv/restic/fleet"});
    refused(&app, &operator, "/repositories", no_password, "password:").await;
    let (_, html) = page(&app, &operator, "/repositories").await;
    assert!(html.contains(r#"id="no-repositories""#), "nothing stored");

    let (status, repo) = call(
        &app,
        &operator,
        Method::POST,
        "/repositories",
        Some(json!({"name": "fleet", "url": "/srv/restic/fleet",
                    "password": "hunter2-repo-secret", "credential": "cred-very-secret"})),
    )
    .await;
    assert_eq!(status, 201, "{repo}");
    let repo_id = repo["id"].as_str().unwrap().to_owned();
    for host in &ids {
        let (status, answer) = call(
            &app,
            &operator,
            Method::PUT,
            &format!("/hosts/{host}/repository"),
            Some(json!({ "repository_id": repo_id })),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    // A prune holds the repository; a backup on beta waits for it.
    let (prune, got) =
        job_with_lease(&app, &ids[0], &repo_id, JobKind::Prune, Mode::Exclusive).await;
    assert_eq!(got, Acquired::Granted);
    let (backup, got) =
        job_with_lease(&app, &ids[1], &repo_id, JobKind::Backup, Mode::Shared).await;
    let Acquired::Waiting(reason) = got else {
        panic!("the backup should wait: {got:?}")
    };

    let (status, html) = page(&app, &operator, "/repositories").await;
    assert_eq!(status, 200);
    assert!(!html.contains("hunter2-repo-secret") && !html.contains("cred-very-secret"));
    assert_eq!(
        html.matches(r#"data-badge="set""#).count(),
        2,
        "password and credential set"
    );
    assert!(html.contains("<code class=\"repo-url\">/srv/restic/fleet</code>"));
    assert!(html.contains(">alpha<") && html.contains(">beta<"));
    assert!(html.contains(&format!(r#"data-lease-job="{prune}""#)));
    assert!(html.contains(&format!(r#"data-lease-job="{backup}""#)));
    let escaped = reason.replace('"', "&quot;");
    assert!(html.contains(&escaped), "the waiting reason {reason:?}");
    // The waiting job's host page says why it waits.
    let (_, host_page) = page(&app, &operator, &format!("/hosts/{}", ids[1])).await;
    assert!(
        host_page.contains("waiting-for") && host_page.contains(&escaped),
        "{reason}"
    );
    let (_, job_page) = page(&app, &operator, &format!("/jobs/{backup}")).await;
    assert!(job_page.contains(r#"id="job-waiting-for""#));

    // Delete is refused while hosts use it, naming them.
    let (status, answer) = call(
        &app,
        &operator,
        Method::DELETE,
        &format!("/repositories/{repo_id}"),
        None,
    )
    .await;
    assert_eq!(status, 409);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&ids[0]) && message.contains(&ids[1]),
        "{message}"
    );
    let (_, html) = page(&app, &operator, "/repositories").await;
    assert!(
        html.contains(&format!(r#"data-repository-id="{repo_id}""#)),
        "still there"
    );

    // A viewer sees the list without forms and cannot change it.
    let password = add_user(&app, "vera", Role::Viewer).await;
    let viewer = login(&app, "vera", &password).await;
    let (status, html) = page(&app, &viewer, "/repositories").await;
    assert_eq!(status, 200);
    assert!(html.contains(">fleet<") && !html.contains("data-change"));
    let (status, _): (u16, Value) = call(
        &app,
        &viewer,
        Method::PUT,
        &format!("/repositories/{repo_id}"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 403);
}

/// The maintenance host of a repository with 120 hosts attached: the
/// select names the first 50, the search field (and its script) is there,
/// and the host API it calls finds any attached host by name and never
/// one attached elsewhere; a host past the first 50, once chosen, is
/// shown chosen. A repository with few hosts has no search field.
#[actix_web::test]
async fn maintenance_host_search_reaches_every_attached_host() {
    let app = spawn_app().await;
    let mut seeds: Vec<Seed> = (0..120)
        .map(|i| Seed::new(&format!("web-{i:03}"), &[]))
        .collect();
    seeds.push(Seed::new("web-elsewhere", &[]));
    let ids = seed(&app, seeds).await;
    let password = add_user(&app, "omar", Role::Operator).await;
    let operator = login(&app, "omar", &password).await;
    let mut repos = Vec::new();
    for name in ["big", "small"] {
        let (status, repo) = call(
            &app,
            &operator,
            Method::POST,
            "/repositories",
            Some(json!({"name": name, "url": format!("/srv/restic/{name}"), "password": "pw-1"})),
        )
        .await;
        assert_eq!(status, 201, "{repo}");
        repos.push(repo["id"].as_str().unwrap().to_owned());
    }
    let (big, small) = (repos[0].clone(), repos[1].clone());
    let pool = app.state.pool.clone();
    let attach: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                id.clone(),
                if i < 120 { big.clone() } else { small.clone() },
            )
        })
        .collect();
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        for (host, repo) in attach {
            assert!(store::repositories::attach(
                &mut conn,
                &host.as_str().into(),
                &repo,
                store::now_ms()
            )
            .unwrap());
        }
    })
    .await
    .unwrap();

    let (status, html) = page(&app, &operator, "/repositories").await;
    assert_eq!(status, 200);
    let select = format!("r-{big}-maintenance");
    assert!(
        html.contains(&format!(r#"data-host-search="{select}""#)),
        "{html}"
    );
    assert!(html.contains("/assets/host_search.js?v="));
    assert!(!html.contains(&format!(r#"data-host-search="r-{small}-maintenance""#)));
    assert!(
        html.contains(">web-049<") && !html.contains(">web-050<"),
        "first 50 named"
    );

    // What the search field asks: attached hosts whose name contains it.
    let search = |q: &str| format!("/hosts?limit=50&repository_id={big}&q={q}");
    let (status, found) = call(&app, &operator, Method::GET, &search("web-11"), None).await;
    assert_eq!(status, 200, "{found}");
    let names: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    let wanted: Vec<String> = (110..120).map(|i| format!("web-{i}")).collect();
    assert_eq!(names, wanted, "{found}");
    assert_eq!(found["total"], 10);
    let (_, found) = call(&app, &operator, Method::GET, &search("elsewhere"), None).await;
    assert_eq!(found["total"], 0, "a host of another repository: {found}");
    let (_, all) = call(&app, &operator, Method::GET, &search(""), None).await;
    assert_eq!(all["total"], 120);
    assert_eq!(all["items"].as_array().unwrap().len(), 50, "one page");

    // Chosen past the first 50, it is shown as the choice.
    let last = &ids[119];
    let (status, answer) = call(
        &app,
        &operator,
        Method::PUT,
        &format!("/repositories/{big}"),
        Some(json!({ "maintenance_host_id": last })),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (_, html) = page(&app, &operator, "/repositories").await;
    assert!(
        html.contains(&format!(
            r#"<option value="{last}" selected>web-119</option>"#
        )),
        "{html}"
    );
}

/// The fleet pages need a session like every page.
#[actix_web::test]
async fn fleet_pages_redirect_to_login() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, location) in [
        ("/policies", "/login?next=/policies"),
        ("/policies/abc", "/login?next=/policies/abc"),
        ("/repositories", "/login?next=/repositories"),
    ] {
        let resp = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(resp.headers()["location"], location, "{path}");
    }
}
