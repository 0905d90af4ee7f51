//! The snapshot page, the search page and a restore's job page over
//! plain HTTP against a real server and a scripted agent: the catalog's
//! states (waiting, listed live by the agent, catalogued), paging of a
//! big folder, escaping, what viewers and operators get, download
//! controls disabled with their reason, and bad input (400 naming the
//! field, 404 for an unknown snapshot or host).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use reqwest::Method;
use restic_manager::auth::Role;
use restic_manager::protocol::{CatalogEntry, CatalogListing};
use restic_manager::store;
use serde_json::json;

use crate::api_catalog::{agent_with_snapshot, entry, next_list, run_catalog, SNAP};
use crate::common::agent::{db, eventually, job_when};
use crate::common::api::{call, login, Browser};
use crate::common::server::{spawn_app, TestApp};

/// Files in the big folder (more than two pages of the browser).
const BIG: usize = 450;
const EVIL: &str = "<img src=x onerror=alert(1)>.txt";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A page as this session sees it: status and body.
async fn page(app: &TestApp, session: &Browser, path: &str) -> (u16, String) {
    let resp = client()
        .get(app.url(path))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn session(app: &TestApp, name: &str, role: Role) -> Browser {
    let password = crate::common::fleet::add_user(app, name, role).await;
    login(app, name, &password).await
}

/// The snapshot's entries: `/etc` with a few files, a big folder and a
/// name that is markup.
fn entries() -> Vec<CatalogEntry> {
    let mut out = vec![
        entry("/etc", "dir", None),
        entry("/etc/hosts", "file", Some(220)),
        entry("/etc/nginx", "dir", None),
        entry("/etc/nginx/nginx.conf", "file", Some(1000)),
        entry(&format!("/etc/{EVIL}"), "file", Some(5)),
        entry("/etc/big", "dir", None),
    ];
    for i in 0..BIG {
        out.push(entry(&format!("/etc/big/f{i:04}"), "file", Some(10)));
    }
    out
}

/// How many entry rows a page shows.
fn rows(html: &str) -> usize {
    html.matches("<tr data-entry=").count()
}

/// Waiting, live, catalogued; paging; roles; downloads; bad input; the
/// search page; a restore's job page.
#[actix_web::test]
async fn snapshot_page_search_and_restore_job() {
    let app = spawn_app().await;
    let admin = login(&app, "admin", &app.admin_password).await;
    let viewer = session(&app, "vera", Role::Viewer).await;
    let operator = session(&app, "otto", Role::Operator).await;
    let (enrolled, mut agent, run) = agent_with_snapshot(&app).await;
    let host = enrolled.host_id.clone();
    let base = format!("/hosts/{host}/snapshots/{SNAP}");

    // Without a session: the login page, coming back here.
    let resp = client().get(app.url(&base)).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"],
        format!("/login?next={base}").as_str()
    );

    // Not catalogued yet: said so, with the waiting catalog job the
    // script follows, and the live listing offered (the host is online).
    let (status, html) = page(&app, &admin, &base).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"data-state="queued""#), "{html}");
    assert!(html.contains(r#"id="not-catalogued""#));
    assert!(html.contains(r#"id="list-live""#));
    assert!(html.contains(&format!(
        r#"data-catalog-events="/api/v1/jobs/{}/events""#,
        run.job_id
    )));
    assert!(!html.contains(r#"id="file-browser""#), "no empty tree");
    assert!(html.contains("/assets/browse.js?v="));

    // The live listing: the agent lists /etc while the page waits.
    let url = app.url(&format!("{base}?path=/etc&live=1"));
    let cookie = viewer.cookie.clone();
    let request = tokio::spawn(async move {
        let resp = client()
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    });
    let list = next_list(&mut agent).await;
    assert_eq!(list.path, "/etc");
    agent
        .send(CatalogListing {
            request_id: list.request_id.clone(),
            entries: vec![
                entry("/etc/hosts", "file", Some(220)),
                entry("/etc/nginx", "dir", None),
            ],
            done: true,
            error: None,
        })
        .await;
    let (status, html) = request.await.unwrap();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"id="live-note""#), "{html}");
    assert!(html.contains(r#"data-source="live""#));
    assert_eq!(rows(&html), 2);
    assert!(
        html.contains(&format!(r#"href="{base}?path=/etc/nginx&amp;live=1""#)),
        "folders link on, live: {html}"
    );

    // Catalogued: the page reads the catalog, directories first.
    run_catalog(&mut agent, &run, &entries()).await;
    job_when(&app, &run.job_id, "the catalog job succeeded", |j| {
        j.status == store::JobStatus::Succeeded
    })
    .await;
    let (status, html) = page(&app, &viewer, &format!("{base}?path=/etc/")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"data-state="complete""#), "{html}");
    assert!(!html.contains("data-catalog-events"));
    let first_dir = html.find(r#"data-entry="/etc/big""#).unwrap();
    let first_file = html.find(r#"data-entry="/etc/hosts""#).unwrap();
    assert!(first_dir < first_file, "directories first");
    assert!(html.contains(r#"<a href="/hosts/"#) || html.contains("data-crumb"));
    assert!(html.contains(r#"data-crumb="/etc""#));
    assert!(!html.contains(EVIL), "raw markup from a file name");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;.txt"));
    // A viewer browses only.
    for forbidden in [
        "select-entry",
        "restore-dialog",
        "data-download",
        "data-change",
    ] {
        assert!(!html.contains(forbidden), "viewer sees {forbidden}");
    }

    // A big folder is paged; "select the whole folder" is offered.
    let big = format!("{base}?path=/etc/big");
    let (status, html) = page(&app, &operator, &big).await;
    assert_eq!(status, 200);
    assert_eq!(rows(&html), 200);
    assert!(html.contains(&format!(r#"data-total="{BIG}""#)));
    assert!(html.contains(r#"id="page-next""#));
    assert!(!html.contains(r#"id="page-prev""#));
    assert!(html.contains(r#"id="select-folder" type="button" data-select-path="/etc/big""#));
    assert!(html.contains(r#"class="select-entry""#));
    assert!(html.contains(r#"id="select-all""#));
    assert!(html.contains(r#"id="restore-dialog""#));
    assert!(html.contains(&format!(r#"<option value="{host}" selected>"#)));
    // The scripted agent does not list the download capability.
    assert!(html.contains("data-download-blocked"), "{html}");
    assert!(html.contains("too old to stream downloads"));
    let (_, html) = page(&app, &operator, &format!("{big}&offset=400")).await;
    assert_eq!(rows(&html), BIG - 400);
    assert!(html.contains(r#"id="page-prev""#));
    assert!(!html.contains(r#"id="page-next""#));
    assert!(html.contains("Entries 401–450 of 450"));

    // The short id works too; bad input is refused, naming the field.
    let (status, _) = page(
        &app,
        &viewer,
        &format!("/hosts/{host}/snapshots/{}", &SNAP[..8]),
    )
    .await;
    assert_eq!(status, 200);
    for (path, status, text) in [
        (
            format!("/hosts/{host}/snapshots/deadbeef"),
            404,
            "snapshot deadbeef of host",
        ),
        (
            format!("/hosts/nohost/snapshots/{SNAP}"),
            404,
            "host nohost not found",
        ),
        (
            format!("{base}?path=etc"),
            400,
            "path: must be an absolute path",
        ),
        (
            format!("{base}?path=/etc/../root"),
            400,
            "path: must not contain",
        ),
        (
            format!("{base}?offset=x"),
            400,
            "offset: expected a whole number",
        ),
        (format!("{base}?live=yes"), 400, "live: expected 1 or 0"),
    ] {
        let (got, html) = page(&app, &operator, &path).await;
        assert_eq!(got, status, "{path}: {html}");
        assert!(html.contains(text), "{path}: {html}");
    }

    // The search page: the form, a too-short text, matches linking to the
    // folder, an unknown host.
    let (status, html) = page(&app, &viewer, "/search").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"id="search-form""#));
    assert!(!html.contains("search-total"));
    let (status, html) = page(&app, &viewer, "/search?q=ng").await;
    assert_eq!(status, 400);
    assert!(html.contains(r#"id="search-error""#), "{html}");
    assert!(html.contains("q: must be at least 3 characters"));
    let (status, html) = page(&app, &viewer, "/search?q=NGINX.c").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"data-total="1""#), "{html}");
    assert!(html.contains(&format!(r#"href="{base}?path=/etc/nginx""#)));
    assert!(html.contains(&format!(r#"href="/hosts/{host}""#)));
    let (status, html) = page(&app, &viewer, "/search?q=big/f&host_id=").await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!(r#"data-total="{BIG}""#)), "{html}");
    assert!(html.contains("Next →"));
    let (status, _) = page(&app, &viewer, "/search?q=nginx&host_id=nohost").await;
    assert_eq!(status, 404);
    let (status, html) = page(&app, &viewer, "/search?q=%3Cscript%3E").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"value="&lt;script&gt;""#), "{html}");

    // A restore's job page says what it restores, linking the snapshot.
    let (status, job) = call(
        &app,
        &app.admin_token,
        Method::POST,
        &format!("/hosts/{host}/jobs"),
        Some(json!({"kind": "restore", "snapshot_id": SNAP,
                    "paths": ["/etc/hosts", "/etc/nginx/nginx.conf"],
                    "target": "/tmp/restore-ui", "overwrite": "if-newer", "verify": true})),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let (status, html) = page(
        &app,
        &viewer,
        &format!("/jobs/{}", job["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"id="job-restore-target""#), "{html}");
    assert!(html.contains("/tmp/restore-ui"));
    assert!(html.contains("/etc/nginx/nginx.conf"));
    assert!(html.contains("if-newer"));
    assert!(html.contains(&format!(r#"href="/hosts/{host}/snapshots/{SNAP}""#)));

    // Offline: downloads are disabled saying why; the catalog still browses.
    agent.close().await;
    let id = host.clone();
    eventually("the host to be offline", || {
        let id = id.clone();
        let app = &app;
        async move {
            let online = db(app, move |c| store::hosts::get(c, &id)).await?.online;
            (!online).then_some(())
        }
    })
    .await;
    let (status, html) = page(&app, &operator, &format!("{base}?path=/etc")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("The host is offline: downloads stream"),
        "{html}"
    );
    assert!(html.contains(r#"id="download-folder" type="button" disabled"#));
    assert!(rows(&html) > 0);
    app.stop().await;
}
