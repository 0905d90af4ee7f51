//! `store::host_state`: the one statement a greeting reads a host's
//! one-row state with gives what the separate reads give, on both
//! backends; the checks built from it follow a policy written on another
//! connection (issue 19: fewer round trips per greeting).

use std::collections::BTreeMap;

use restic_manager::protocol::{HealthCheckSpec, HealthCheckType};
use restic_manager::store::models::{HostPatch, NewJob, RepositoryUpsert};
use restic_manager::store::policies::{self, Policy, Selector};
use restic_manager::store::{
    self, config_versions, health, host_state, repositories, schedule_versions, verification,
    DbConnection,
};

use super::{add_host, for_each_backend, NOW};
use restic_manager::store::{JobKind, JobTrigger};

fn check(name: &str, target: &str) -> HealthCheckSpec {
    HealthCheckSpec {
        name: name.to_owned(),
        kind: HealthCheckType::Tcp,
        target: target.to_owned(),
        interval_seconds: 60,
        timeout_seconds: 5,
        expect_status: None,
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn checks_policy(name: &str, selector: &[(&str, &str)], checks: Vec<HealthCheckSpec>) -> Policy {
    Policy {
        id: store::new_id(),
        name: name.to_owned(),
        selector: Selector {
            labels: labels(selector),
        },
        source_groups: Vec::new(),
        schedules: Vec::new(),
        repository_id: None,
        options: None,
        health_checks: checks,
        created_at: NOW,
        updated_at: NOW,
    }
}

/// The state's fields are what the separate reads answer.
fn assert_matches_separate_reads(c: &mut DbConnection, host_id: &str) {
    let state = host_state::get(c, host_id).unwrap().expect("the host");
    assert_eq!(
        state.schedule_version,
        schedule_versions::get(c, host_id)
            .unwrap()
            .map(|v| v.version)
    );
    assert_eq!(
        Some(state.config),
        config_versions::get(c, host_id).unwrap()
    );
    let host = store::hosts::get(c, host_id).unwrap().unwrap();
    assert_eq!(state.labels, host.labels);
    assert!(state.repository == repositories::get_for_host(c, host_id).unwrap());
    assert_eq!(
        health::parse_checks(state.own_checks.as_deref()).unwrap(),
        health::get_checks(c, host_id).unwrap()
    );
    assert_eq!(
        health::effective_checks_of(
            c,
            state.own_checks.as_deref(),
            &state.labels,
            state.policy_revision
        )
        .unwrap(),
        health::effective_checks(c, host_id).unwrap()
    );

    assert_eq!(
        state.has_queued,
        !store::jobs::queued_for_host(c, host_id, i64::MAX)
            .unwrap()
            .is_empty()
    );

    // The host page's one statement answers the same, and the rest.
    let page = host_state::for_page(c, host_id).unwrap().expect("the host");
    let with_version = store::hosts::get_with_version(c, host_id).unwrap().unwrap();
    assert_eq!(page.host.host, with_version.host);
    assert_eq!(page.host.config, with_version.config);
    assert_eq!(page.host.schedule, with_version.schedule);
    assert!(page.repository == state.repository);
    assert_eq!(page.own_checks, state.own_checks);
    assert_eq!(page.policy_revision, state.policy_revision);
    assert_eq!(page.discovery, store::discovery::get(c, host_id).unwrap());
    let coverage = verification::host_check_coverage_of(c, host_id, page.check_subsets).unwrap();
    let all = verification::check_coverage(c).unwrap();
    assert_eq!(Some(&coverage), all.iter().find(|v| v.host_id == host_id));
}

/// A bare host, then one with every part set: the one statement answers
/// what the five reads did; an unknown host is `None`.
#[test]
fn one_statement_answers_what_the_separate_reads_did() {
    for_each_backend("host_state_matches", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let other = add_host(c, "db");
        let bare = host_state::get(c, &host.id).unwrap().unwrap();
        let version_before = bare.schedule_version.unwrap_or(0);
        assert!(bare.repository.is_none());
        assert_eq!(bare.own_checks, None);
        assert!(
            bare.policy_revision.is_some(),
            "the migration's revision row"
        );
        assert_matches_separate_reads(c, &host.id);

        schedule_versions::bump(c, &host.id).unwrap();
        schedule_versions::bump(c, &host.id).unwrap();
        repositories::upsert_for_host(
            c,
            &host.id,
            &RepositoryUpsert {
                id: store::new_id(),
                url: "sftp:backup@vault:/srv/restic/web".to_owned(),
                username: Some(Some("backup".to_owned())),
                password_sealed: Some(Some(vec![1, 2, 3])),
                ..RepositoryUpsert::default()
            },
            NOW,
        )
        .unwrap()
        .unwrap();
        health::set_checks(c, &host.id, &[check("ssh", "localhost:22")], NOW).unwrap();
        store::hosts::patch(
            c,
            &host.id,
            &HostPatch {
                display_name: None,
                labels: Some(labels(&[("role", "web"), ("site", "ams")])),
            },
            NOW,
        )
        .unwrap()
        .unwrap();
        policies::insert(
            c,
            &checks_policy(
                "web-checks",
                &[("role", "web")],
                vec![check("http", "localhost:80")],
            ),
        )
        .unwrap();

        store::discovery::put(c, &host.id, &[], NOW).unwrap();
        let check = store::jobs::insert(
            c,
            &NewJob::new(
                store::new_id(),
                host.id.as_str(),
                JobKind::Check,
                JobTrigger::Manual,
                NOW,
            ),
        )
        .unwrap();
        verification::rotate_check(c, &host.id, &check.id, 7, NOW).unwrap();

        let full = host_state::get(c, &host.id).unwrap().unwrap();
        assert!(full.has_queued, "the check job is queued");
        assert!(!host_state::get(c, &other.id).unwrap().unwrap().has_queued);
        let page = host_state::for_page(c, &host.id).unwrap().unwrap();
        assert_eq!(page.check_subsets, Some(7));
        assert_eq!(page.discovery.map(|d| d.received_at), Some(NOW));
        let bare = host_state::for_page(c, &other.id).unwrap().unwrap();
        assert_eq!((bare.check_subsets, bare.discovery), (None, None));
        assert_eq!(full.schedule_version, Some(version_before + 2));
        assert_eq!(
            full.repository.as_ref().map(|r| r.url.as_str()),
            Some("sftp:backup@vault:/srv/restic/web")
        );
        assert_eq!(full.labels.get("site").map(String::as_str), Some("ams"));
        assert_matches_separate_reads(c, &host.id);
        assert_matches_separate_reads(c, &other.id);
        let names: Vec<String> = health::effective_checks_of(
            c,
            full.own_checks.as_deref(),
            &full.labels,
            full.policy_revision,
        )
        .unwrap()
        .into_iter()
        .map(|e| e.spec.name)
        .collect();
        assert_eq!(names, vec!["ssh", "http"], "its own, then the policy's");

        assert!(host_state::get(c, "no-such-host").unwrap().is_none());
        assert!(host_state::for_page(c, "no-such-host").unwrap().is_none());
    });
}

/// The policies with checks are remembered per policy revision: a policy
/// written on another connection (another process, say `restic-manager
/// apply`) changes the revision, and the next greeting's checks are the
/// new ones, not those held in memory.
#[test]
fn checks_follow_a_policy_written_elsewhere() {
    for_each_backend("host_state_checks_revision", |pool, _| {
        let mut conn = pool.get().unwrap();
        let mut elsewhere = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let effective = |c: &mut DbConnection| -> Vec<String> {
            let state = host_state::get(c, &host.id).unwrap().unwrap();
            health::effective_checks_of(
                c,
                state.own_checks.as_deref(),
                &state.labels,
                state.policy_revision,
            )
            .unwrap()
            .into_iter()
            .map(|e| format!("{}={}", e.spec.name, e.spec.target))
            .collect()
        };
        let mut p = checks_policy("all", &[], vec![check("db", "localhost:5432")]);
        policies::insert(c, &p).unwrap();
        assert_eq!(effective(c), vec!["db=localhost:5432"]);
        // Read twice: the second from the memo, the same answer.
        assert_eq!(effective(c), vec!["db=localhost:5432"]);

        p.health_checks = vec![check("db", "localhost:6432")];
        p.updated_at = NOW + 1;
        policies::update(&mut elsewhere, &p).unwrap().unwrap();
        assert_eq!(effective(c), vec!["db=localhost:6432"]);

        policies::delete(&mut elsewhere, &p.id).unwrap();
        assert!(effective(c).is_empty());
    });
}

/// The host page's reads (`ui::host::page`) and a run-now's search by
/// host, never scan a table nor build a join on their own: SQLite's plans with the table
/// statistics of a fresh database. A read that joined a nested join once
/// made SQLite materialise every host's schedule links, 17 ms a page at
/// 10,000 hosts (issue 19's measurements).
#[test]
fn host_page_and_run_now_reads_search_never_scan() {
    let (_dir, pool) = crate::common::db::sqlite_pool();
    let mut conn = pool.get().unwrap();
    let c: &mut DbConnection = &mut conn;
    let id = add_host(c, "web").id.as_str().to_owned();
    let (row, statements) = super::statements_of(c, |c| {
        let row = host_state::for_page(c, &id).unwrap().unwrap();
        verification::host_check_coverage_of(c, &id, Some(3)).unwrap();
        verification::latest_drill(c, &id).unwrap();
        let filter = store::jobs::JobFilter {
            host_id: Some(id.clone()),
            limit: 25,
            ..Default::default()
        };
        store::jobs::list(c, &filter).unwrap();
        store::leases::waiting_for(c, &["a-job"]).unwrap();
        store::api_queries::snapshots_page(c, &id, 200, 0).unwrap();
        let missed = store::missed_runs::MissedRunFilter {
            host_id: Some(id.clone()),
            since: Some(NOW),
            limit: 20,
            ..Default::default()
        };
        store::missed_runs::list(c, &missed).unwrap();
        health::latest_for_host(c, &id).unwrap();
        store::host_metrics::list_for_host(c, &id, NOW, 100).unwrap();
        store::repo_stats::list_for_host(c, &id, Some(NOW), 1000).unwrap();
        store::source_groups::list_for_host(c, &id).unwrap();
        store::schedules::list_with_groups_for_host(c, &id).unwrap();
        host_state::for_run(c, &id, Some("etc")).unwrap();
        host_state::for_run(c, &id, None).unwrap();
        row
    });
    assert!(row.policy_revision.is_some());

    assert!(statements.len() >= 14, "{statements:#?}");
    for statement in statements {
        // Unbound parameters are NULL to EXPLAIN.
        for d in super::plan_of(c, &statement, "") {
            assert!(
                !(d.starts_with("SCAN ") || d.contains("MATERIALIZE") || d.contains("AUTOMATIC")),
                "{d}\nin: {statement}"
            );
        }
    }
}

/// A run-now's one read: the host with its repository, and the group it
/// names when the host has it; nothing of a group it does not name or
/// does not have; `None` for an unknown host.
#[test]
fn a_run_nows_read_finds_the_host_its_repository_and_group() {
    for_each_backend("host_state_for_run", |pool, backend| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let other = add_host(c, "db");
        let etc = super::add_group(c, &host.id, "etc");
        super::add_group(c, &other.id, "home");
        let bare = host_state::for_run(c, &host.id, Some("etc"))
            .unwrap()
            .unwrap();
        assert_eq!(bare.host.id, host.id, "{backend}");
        assert!(bare.repository.is_none());
        assert_eq!(bare.group, Some(etc.clone()));
        repositories::upsert_for_host(
            c,
            &host.id,
            &RepositoryUpsert {
                id: store::new_id(),
                url: "/srv/restic/web".to_owned(),
                ..RepositoryUpsert::default()
            },
            NOW,
        )
        .unwrap()
        .unwrap();
        let full = host_state::for_run(c, &host.id, None).unwrap().unwrap();
        assert_eq!(
            full.repository.map(|r| r.url),
            Some("/srv/restic/web".to_owned())
        );
        assert_eq!(full.group, None, "{backend}: no group named");
        let other_hosts = host_state::for_run(c, &host.id, Some("home"))
            .unwrap()
            .unwrap();
        assert_eq!(other_hosts.group, None, "{backend}: another host's group");
        assert!(host_state::for_run(c, "no-such-host", Some("etc"))
            .unwrap()
            .is_none());
    });
}
