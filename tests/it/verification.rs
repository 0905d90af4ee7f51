//! Verification (issue 11 §4): the check rotation and coverage and the
//! newest drills in the store on both backends, the two `/metrics`
//! families, the host page's verification lines, and check jobs created
//! through the API reading the next `--read-data-subset=k/n`.

use reqwest::{Method, StatusCode};
use restic_manager::ids::{HostId, JobId};
use restic_manager::store::{self, models, verification, JobKind, JobStatus, JobTrigger};
use serde_json::{json, Value};

use crate::common::api::{call, create_host, db, login};
use crate::common::server::{client, spawn_app};

fn new_host(c: &mut store::DbConnection, name: &str) -> String {
    store::hosts::insert(
        c,
        &models::NewHost::new(
            store::new_id(),
            name,
            restic_manager::auth::hash_token(name),
            store::now_ms(),
        ),
    )
    .unwrap()
    .id
    .into_string()
}

/// Inserts a job of `kind` (tagged `tag`) and finishes it with `status`
/// at `at`; returns its id.
fn finished_job(
    c: &mut store::DbConnection,
    host: &str,
    kind: JobKind,
    tag: Option<&str>,
    (status, at): (JobStatus, i64),
    stats: Option<Value>,
    error: Option<&str>,
) -> String {
    let mut new = models::NewJob::new(store::new_id(), host, kind, JobTrigger::Manual, at - 10);
    new.tag = tag.map(str::to_owned);
    let id = store::jobs::insert(c, &new).unwrap().id.into_string();
    finish(c, host, &id, status, at, stats, error);
    id
}

fn finish(
    c: &mut store::DbConnection,
    host: &str,
    id: &str,
    status: JobStatus,
    at: i64,
    stats: Option<Value>,
    error: Option<&str>,
) {
    let done = models::JobFinish {
        status,
        finished_at: at,
        exit_code: Some(i32::from(status != JobStatus::Succeeded)),
        error: error.map(str::to_owned),
        warning: None,
        stats,
    };
    store::channel::finish_for_host(c, &HostId::from(host), &JobId::from(id), &done).unwrap();
}

/// The host page's coverage of a host: its rotation read with the host's
/// row (`host_state::for_page`), then its runs.
fn host_coverage(c: &mut store::DbConnection, host: &str) -> verification::Coverage {
    let row = store::host_state::for_page(c, host).unwrap().unwrap();
    verification::host_check_coverage_of(c, host, row.check_subsets).unwrap()
}

/// The rotation advances k by one per check and wraps after n; coverage
/// counts the distinct subsets read by succeeded checks among the last n;
/// the newest succeeded drill per host and group is found, a failed one
/// is the host's latest drill, and a revoked host leaves the metrics.
fn check_store(pool: &store::Pool) {
    let mut c = pool.get().unwrap();
    let now = store::now_ms();
    let a = new_host(&mut c, "a");
    let b = new_host(&mut c, "b");

    // Host a: n = 3; four checks read 1, 2, 3, 1.
    let mut ks = Vec::new();
    let mut ids = Vec::new();
    for i in 0..4 {
        let new = models::NewJob::new(
            store::new_id(),
            a.as_str(),
            JobKind::Check,
            JobTrigger::Manual,
            now + i,
        );
        let id = store::jobs::insert(&mut c, &new).unwrap().id.into_string();
        ks.push(
            verification::rotate_check(&mut c, &a.as_str().into(), &id.as_str().into(), 3, now + i)
                .unwrap(),
        );
        ids.push(id);
    }
    assert_eq!(ks, vec![(1, 3), (2, 3), (3, 3), (1, 3)]);
    // Runs 2..4 are kept: subsets 2, 3, 1. Succeed 2 and 4 (subsets 2 and 1), fail 3.
    finish(
        &mut c,
        &a,
        &ids[0],
        JobStatus::Succeeded,
        now + 10,
        None,
        None,
    );
    finish(
        &mut c,
        &a,
        &ids[1],
        JobStatus::Succeeded,
        now + 11,
        None,
        None,
    );
    finish(
        &mut c,
        &a,
        &ids[2],
        JobStatus::Failed,
        now + 12,
        None,
        Some("boom"),
    );
    finish(
        &mut c,
        &a,
        &ids[3],
        JobStatus::Succeeded,
        now + 13,
        None,
        None,
    );
    let cov = verification::check_coverage(&mut c).unwrap();
    assert_eq!(cov, {
        let mut want = vec![
            verification::Coverage {
                host_id: a.clone(),
                read: 2,
                subsets: 3,
            },
            verification::Coverage {
                host_id: b.clone(),
                read: 0,
                subsets: 0,
            },
        ];
        want.sort_by(|x, y| x.host_id.cmp(&y.host_id));
        want
    });
    let one = host_coverage(&mut c, &a);
    assert_eq!(one.host_id, a);
    assert_eq!(
        host_coverage(&mut c, &b),
        verification::Coverage {
            host_id: b.clone(),
            read: 0,
            subsets: 0,
        }
    );
    assert!((one.ratio() - 2.0 / 3.0).abs() < 1e-9);
    // Changing n starts over at 1 and counts only runs of the new n.
    let new = models::NewJob::new(
        store::new_id(),
        a.as_str(),
        JobKind::Check,
        JobTrigger::Manual,
        now,
    );
    let id = store::jobs::insert(&mut c, &new).unwrap().id.into_string();
    assert_eq!(
        verification::rotate_check(&mut c, &a.as_str().into(), &id.as_str().into(), 5, now)
            .unwrap(),
        (1, 5)
    );
    let one = host_coverage(&mut c, &a);
    assert_eq!((one.read, one.subsets), (0, 5));

    // Drills: two succeeded of "etc" (the later counts), one of "home",
    // then a failed "etc" that is the newest.
    finished_job(
        &mut c,
        &a,
        JobKind::Drill,
        Some("etc"),
        (JobStatus::Succeeded, now - 5_000),
        None,
        None,
    );
    finished_job(
        &mut c,
        &a,
        JobKind::Drill,
        Some("etc"),
        (JobStatus::Succeeded, now - 3_000),
        None,
        None,
    );
    finished_job(
        &mut c,
        &a,
        JobKind::Drill,
        Some("home"),
        (JobStatus::Succeeded, now - 4_000),
        None,
        None,
    );
    finished_job(
        &mut c,
        &a,
        JobKind::Backup,
        Some("etc"),
        (JobStatus::Succeeded, now),
        None,
        None,
    );
    let failed = finished_job(
        &mut c,
        &a,
        JobKind::Drill,
        Some("etc"),
        (JobStatus::Failed, now - 1_000),
        None,
        Some("1 file mismatched"),
    );
    assert_eq!(
        verification::last_verified_restores(&mut c).unwrap(),
        vec![
            (a.clone(), "etc".to_owned(), now - 3_000),
            (a.clone(), "home".to_owned(), now - 4_000),
        ]
    );
    let latest = verification::latest_drill(&mut c, &a).unwrap().unwrap();
    assert_eq!(latest.id.as_str(), failed);
    assert!(verification::latest_drill(&mut c, &b).unwrap().is_none());

    store::hosts::revoke(&mut c, &a, now).unwrap();
    assert!(verification::last_verified_restores(&mut c)
        .unwrap()
        .is_empty());
    let cov = verification::check_coverage(&mut c).unwrap();
    assert_eq!(cov.len(), 1, "{cov:?}");
    assert_eq!(cov[0].host_id, b);
}

/// The store side on SQLite and, when configured, PostgreSQL.
#[test]
fn store_on_both_backends() {
    let (_dir, pool) = crate::common::db::sqlite_pool();
    check_store(&pool);
    if let Some(pg) = crate::common::db::postgres_pool() {
        check_store(&pg);
        println!("verification store_on_both_backends: backend=postgres ok");
    }
}

/// A host page's text with tags removed and whitespace folded.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for ch in html.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Check jobs from the API rotate; `/metrics` shows the newest succeeded
/// drill and the coverage; the host page shows the last drill (or the hint)
/// and the coverage line, and operators get the Run drill now button.
#[actix_web::test]
async fn metrics_and_host_page() {
    let app = spawn_app().await;
    let host = create_host(&app, "verify-host").await;
    let browser = login(&app, "admin", &app.admin_password).await;
    let host_page = |path: String| {
        let cookie = browser.cookie.clone();
        let url = app.url(&path);
        async move {
            let resp = client()
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.text().await.unwrap()
        }
    };

    let html = host_page(format!("/hosts/{host}")).await;
    let text = text_of(&html);
    assert!(text.contains("No verified restore yet."), "{text}");
    assert!(
        text.contains("Data read by check: no check run yet"),
        "{text}"
    );
    assert!(html.contains(r#"id="run-drill""#), "{html}");

    // Two checks through the API read subsets 1 and 2 of 30.
    let mut check_ids = Vec::new();
    for _ in 0..2 {
        let (status, body) = call(
            &app,
            &app.admin_token,
            Method::POST,
            &format!("/hosts/{host}/jobs"),
            Some(json!({"kind": "check"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        check_ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let (h, ids) = (host.clone(), check_ids.clone());
    let args = db(&app, move |c| {
        let now = store::now_ms();
        let args: Vec<Vec<String>> = ids
            .iter()
            .map(|id| store::jobs::get(c, id).unwrap().unwrap().args)
            .collect();
        finish(c, &h, &ids[0], JobStatus::Succeeded, now, None, None);
        args
    })
    .await;
    assert_eq!(
        args,
        vec![
            vec!["--read-data-subset=1/30".to_owned()],
            vec!["--read-data-subset=2/30".to_owned()],
        ]
    );

    // A succeeded drill of "etc" at a known time.
    let at = 1_767_323_045_000;
    let h = host.clone();
    db(&app, move |c| {
        finished_job(
            c,
            &h,
            JobKind::Drill,
            Some("etc"),
            (JobStatus::Succeeded, at),
            Some(json!({"files": 12, "bytes": 3_670_016, "mismatches": 0, "duration_ms": 900})),
            None,
        );
    })
    .await;

    let text = crate::common::api::metrics_text(&app).await;
    let drill = format!(
        "restic_manager_last_verified_restore_timestamp_seconds{{host_id=\"{host}\",source_group=\"etc\"}} 1767323045.0\n"
    );
    assert!(text.contains(&drill), "{drill:?} missing from\n{text}");
    assert!(
        text.contains("# TYPE restic_manager_check_coverage_ratio gauge\n"),
        "{text}"
    );
    let coverage = format!("restic_manager_check_coverage_ratio{{host_id=\"{host}\"}} ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&coverage))
        .unwrap_or_else(|| panic!("{coverage} missing from\n{text}"));
    let ratio: f64 = line[coverage.len()..].parse().unwrap();
    assert!((ratio - 1.0 / 30.0).abs() < 1e-9, "{line}");

    let html = host_page(format!("/hosts/{host}")).await;
    let text = text_of(&html);
    assert!(text.contains("Last verified restore: "), "{text}");
    assert!(text.contains("(etc), 12 files, 3.5 MiB, OK"), "{text}");
    assert!(
        text.contains("Data read by check: 1 of 30 subsets in the last 30 runs"),
        "{text}"
    );

    // A newer failed drill is shown with its error.
    let h = host.clone();
    db(&app, move |c| {
        finished_job(
            c,
            &h,
            JobKind::Drill,
            Some("etc"),
            (JobStatus::Failed, at + 60_000),
            Some(json!({"files": 12, "bytes": 100, "mismatches": 1, "duration_ms": 900})),
            Some("1 restored file differs from the catalog"),
        );
    })
    .await;
    let text = text_of(&host_page(format!("/hosts/{host}")).await);
    assert!(
        text.contains(
            "12 files, 0.0 MiB, failed 1 mismatched: 1 restored file differs from the catalog"
        ),
        "{text}"
    );
    // The metric still shows the newest success.
    let metrics = crate::common::api::metrics_text(&app).await;
    assert!(metrics.contains(&drill), "{metrics}");
}

/// The dashboard's calendar has a verified view: per host and day, a
/// succeeded drill is green, a failed one red, none grey; the backups view
/// stays the default, and an unknown view is a 400 naming the parameter.
#[actix_web::test]
async fn calendar_verified_view() {
    let app = spawn_app().await;
    let verified = create_host(&app, "drill-ok").await;
    let broken = create_host(&app, "drill-bad").await;
    let browser = login(&app, "admin", &app.admin_password).await;
    let (v, b) = (verified.clone(), broken.clone());
    db(&app, move |c| {
        let now = store::now_ms();
        for (host, status, at) in [
            (&v, JobStatus::Succeeded, now),
            (&b, JobStatus::Succeeded, now - 1),
            (&b, JobStatus::Failed, now),
        ] {
            let stats = None;
            finished_job(
                c,
                host,
                JobKind::Drill,
                Some("etc"),
                (status, at),
                stats,
                None,
            );
        }
    })
    .await;
    let page = |path: &'static str| {
        let request = browser.page(&app, path);
        async move {
            let resp = request.send().await.unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let cell = |host: &str, outcome: &str| {
        format!(r#"data-host="{host}" data-day="{today}" data-outcome="{outcome}""#)
    };

    let (status, html) = page("/?calendar=verified").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&cell(&verified, "succeeded")), "{html}");
    assert!(html.contains(&cell(&broken, "failed")), "{html}");
    assert!(html.contains("Restore drill outcomes of the last 30 days"));
    assert!(html.contains(r#"href="/?calendar=backups#fleet-calendar""#));

    // The default view counts backups: these hosts have none today.
    let (status, html) = page("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&cell(&verified, "none")), "{html}");
    assert!(html.contains(&cell(&broken, "none")), "{html}");
    assert!(html.contains(r#"href="/?calendar=verified#fleet-calendar""#));

    let (status, html) = page("/?calendar=drills").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("calendar: expected backups or verified"),
        "{html}"
    );
}
