//! Store tests of a host's schedule PUT (`store::schedule_replace`,
//! issue 19): on PostgreSQL one statement run without a transaction (as
//! the writer runs it), on SQLite its statements in a write transaction;
//! either way every refusal writes nothing and a change writes the row,
//! its links, one audit row and one version bump.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel::prelude::*;
use restic_manager::ids::{HostId, ScheduleId};
use restic_manager::store::audit::{self, AuditFilter};
use restic_manager::store::schedule_replace::{replace, Replace, Replaced};
use restic_manager::store::{
    self, hosts, schedule_versions, schedules, DbConnection, ScheduleKind,
};
use serde_json::json;

use super::{add_group, add_host, add_schedule, for_each_backend, NOW};

/// Runs `change` as the writer does: bare on PostgreSQL, in a write
/// transaction on SQLite (a refusal rolls nothing back there: nothing
/// was written).
fn run(c: &mut DbConnection, change: &Replace<'_>) -> Replaced {
    if store::backend_name(c) == "postgres" {
        replace(c, change).unwrap()
    } else {
        store::write_transaction(c, |c| replace(c, change)).unwrap()
    }
}

/// A change of `sid` on `host` to these groups, at `NOW + 1`.
fn change<'a>(host: &'a HostId, sid: &'a ScheduleId, groups: &'a [String]) -> Replace<'a> {
    Replace {
        host_id: host,
        schedule_id: sid,
        cron_expr: "0 3 * * *",
        enabled: false,
        kind: ScheduleKind::Forget,
        group_names: groups,
        now: NOW + 1,
        actor: "alice",
        source_addr: Some("192.0.2.7"),
        detail: json!({"host_id": host, "source_groups": groups}),
    }
}

/// What a refusal must leave as it was: the schedules' rows, their
/// links, the audit log and the host's schedule version.
fn state(c: &mut DbConnection, host: &str) -> String {
    let rows = schedules::list_with_groups_for_host(c, host).unwrap();
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            let names: Vec<&str> = r.groups.iter().map(|g| g.name.as_str()).collect();
            format!("{:?} {names:?}", r.schedule)
        })
        .collect();
    let audited = audit::list(
        c,
        &AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        },
    )
    .unwrap()
    .total;
    let version = schedule_versions::get(c, host).unwrap().map(|v| v.version);
    format!("{rows:?} audit={audited} version={version:?}")
}

/// Host gone or revoked, schedule unknown or another host's, a schedule a
/// policy manages, an unknown group name: each refused with its reason
/// and nothing written. Then a change: the row as sent (its creation time
/// kept), links to exactly the named groups (one dropped, one kept, one
/// added), one audit row with actor, address and detail, the version
/// bumped once; the answer equals what a read gives.
#[test]
fn schedule_replace_refuses_without_writing_and_writes_once() {
    for_each_backend(
        "schedule_replace_refuses_without_writing_and_writes_once",
        |pool, _| {
            let mut conn = pool.get().unwrap();
            let c = &mut *conn;
            let a = add_host(c, "replace-a");
            let b = add_host(c, "replace-b");
            let mut ids = Vec::new();
            for name in ["etc", "home", "var"] {
                ids.push(add_group(c, a.id.as_str(), name).id);
            }
            let own = add_schedule(c, a.id.as_str(), "0 1 * * *", true);
            let etc_home: Vec<&str> = ids[..2].iter().map(|g| g.as_ref()).collect();
            schedules::replace_groups(c, own.id.as_str(), &etc_home).unwrap();
            let managed = add_schedule(c, a.id.as_str(), "0 2 * * *", true);
            diesel::update(store::schema::schedules::table.find(managed.id.as_str()))
                .set(store::schema::schedules::policy_id.eq("pol-1"))
                .execute(&mut **c)
                .unwrap();
            let of_b = add_schedule(c, b.id.as_str(), "0 1 * * *", true);
            let before = state(c, a.id.as_str());

            let home_var = vec!["home".to_owned(), "var".to_owned()];
            let gone = HostId::from("no-such-host");
            let unknown = ScheduleId::from("no-such-schedule");
            assert_eq!(run(c, &change(&gone, &own.id, &home_var)), Replaced::NoHost);
            assert_eq!(
                run(c, &change(&a.id, &unknown, &home_var)),
                Replaced::NoSchedule
            );
            assert_eq!(
                run(c, &change(&a.id, &of_b.id, &home_var)),
                Replaced::NoSchedule
            );
            assert_eq!(
                run(c, &change(&a.id, &managed.id, &home_var)),
                Replaced::Managed("pol-1".to_owned())
            );
            let with_unknown = vec!["etc".to_owned(), "nope".to_owned(), "var".to_owned()];
            assert_eq!(
                run(c, &change(&a.id, &own.id, &with_unknown)),
                Replaced::MissingGroups(vec!["etc".to_owned(), "var".to_owned()])
            );
            assert_eq!(state(c, a.id.as_str()), before, "a refusal writes nothing");

            let version = schedule_versions::get(c, a.id.as_str())
                .unwrap()
                .unwrap()
                .version;
            let Replaced::Done(row, groups) = run(c, &change(&a.id, &own.id, &home_var)) else {
                panic!("not written");
            };
            assert_eq!(groups, home_var);
            assert_eq!(row.created_at, own.created_at, "creation time kept");
            assert_eq!(
                (
                    row.cron_expr.as_str(),
                    row.enabled,
                    row.kind,
                    row.updated_at
                ),
                ("0 3 * * *", false, ScheduleKind::Forget, NOW + 1)
            );
            let read = schedules::get_for_host(c, &a.id, &own.id).unwrap().unwrap();
            assert_eq!(read, row, "the answer is the row");
            let linked: Vec<String> = schedules::groups_of(c, own.id.as_str())
                .unwrap()
                .into_iter()
                .map(|g| g.name)
                .collect();
            assert_eq!(linked, home_var);
            let entries = audit::list(
                c,
                &AuditFilter {
                    action: Some("schedule.update".to_owned()),
                    limit: 100,
                    ..AuditFilter::default()
                },
            )
            .unwrap()
            .items;
            assert_eq!(entries.len(), 1, "one audit row");
            let entry = &entries[0];
            assert_eq!(
                (
                    entry.at,
                    entry.actor.as_str(),
                    entry.target.as_deref(),
                    entry.source_addr.as_deref()
                ),
                (NOW + 1, "alice", Some(own.id.as_str()), Some("192.0.2.7"))
            );
            assert_eq!(
                entry.detail,
                Some(json!({"host_id": a.id, "source_groups": ["home", "var"]}))
            );
            let bumped = schedule_versions::get(c, a.id.as_str())
                .unwrap()
                .unwrap()
                .version;
            assert_eq!(bumped, version + 1, "bumped once");

            // A revoked host's schedule is refused like a missing host's.
            assert!(hosts::revoke(c, a.id.as_str(), NOW + 2).unwrap());
            let before = state(c, a.id.as_str());
            assert_eq!(run(c, &change(&a.id, &own.id, &home_var)), Replaced::NoHost);
            assert_eq!(state(c, a.id.as_str()), before);
        },
    );
}
