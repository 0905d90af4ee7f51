//! `store::schedule_set`: a host's `schedule.set` built from its policy
//! schedule ids and the policies' text is the one its rows give, on both
//! backends, before and after a policy changes (issue 12 §7).

use restic_manager::protocol::RetentionPolicy;
use restic_manager::store::policies::{self, Policy, PolicyGroup, PolicySchedule, Selector};
use restic_manager::store::{
    self, policy_sync, schedule_set, schedules, DbConnection, ScheduleKind,
};

use super::{add_group, add_host, add_schedule, for_each_backend, NOW};

fn group(name: &str, retention: bool) -> PolicyGroup {
    PolicyGroup {
        name: name.to_owned(),
        includes: vec![format!("/srv/{name}"), "/etc".to_owned()],
        excludes: vec!["*.cache".to_owned()],
        retention_policy: retention.then(|| RetentionPolicy {
            keep_daily: Some(3),
            ..RetentionPolicy::default()
        }),
        retry_max: 1,
        retry_backoff_seconds: 60,
        prune_after_forget: false,
        options: None,
    }
}

fn schedule(cron: &str, enabled: bool, kind: ScheduleKind, groups: &[&str]) -> PolicySchedule {
    PolicySchedule {
        cron_expr: cron.to_owned(),
        enabled,
        kind,
        source_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn policy(name: &str, groups: Vec<PolicyGroup>, list: Vec<PolicySchedule>, at: i64) -> Policy {
    Policy {
        id: store::new_id(),
        name: name.to_owned(),
        selector: Selector::default(),
        source_groups: groups,
        schedules: list,
        repository_id: None,
        options: None,
        health_checks: Vec::new(),
        created_at: at,
        updated_at: at,
    }
}

/// Writes the policy (new, or over `old`) and its rows on the hosts.
fn save(c: &mut DbConnection, old: Option<&Policy>, new: &Policy, at: i64) {
    store::write_transaction(c, |c| {
        match old {
            None => policies::insert(c, new).map(|_| ())?,
            Some(_) => policies::update(c, new).map(|_| ())?,
        }
        policy_sync::apply_policy(c, old, Some(new), at).map_err(|e| match e {
            policy_sync::SyncError::Db(e) => e,
            other => panic!("{other}"),
        })?;
        Ok::<_, diesel::result::Error>(())
    })
    .unwrap();
}

/// The reference: the host's rows with their linked groups.
fn from_rows(c: &mut DbConnection, host_id: &str) -> Vec<restic_manager::protocol::ScheduleSpec> {
    schedule_set::from_host_rows(schedules::list_with_groups_for_host(c, host_id).unwrap()).specs()
}

/// A host with its own schedule and two policies' (groups out of name
/// order, a disabled schedule, a schedule without groups): the same
/// schedules, groups and order as its rows; still after a policy changes
/// a schedule and drops another.
#[test]
fn policy_schedules_from_the_policy_match_the_rows() {
    for_each_backend("schedule_set_matches_rows", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let other = add_host(c, "db");
        let etc = add_group(c, &host.id, "etc");
        let own = add_schedule(c, &host.id, "0 4 * * *", true);
        schedules::set_groups(c, &own.id, &[etc.id.to_string()]).unwrap();

        let a = policy(
            "a",
            vec![group("zeta", true), group("alpha", false)],
            vec![
                schedule("0 1 * * *", true, ScheduleKind::Backup, &["zeta", "alpha"]),
                schedule("0 5 * * 0", false, ScheduleKind::Backup, &["zeta"]),
                schedule("0 6 * * 0", true, ScheduleKind::Prune, &[]),
            ],
            NOW + 1,
        );
        save(c, None, &a, NOW + 1);
        let b = policy(
            "b",
            vec![group("beta", false)],
            vec![schedule(
                "30 2 * * *",
                true,
                ScheduleKind::Backup,
                &["beta"],
            )],
            NOW + 2,
        );
        save(c, None, &b, NOW + 2);

        let built = schedule_set::for_host(c, &host.id).unwrap().specs();
        assert_eq!(built.len(), 5, "{built:?}");
        assert_eq!(built, from_rows(c, &host.id));
        assert_eq!(built[0].id, own.id.to_string(), "own first: created first");
        let names: Vec<&str> = built[1]
            .source_groups
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        assert_eq!(names, vec!["alpha", "zeta"], "groups by name");
        assert_eq!(
            schedule_set::for_host(c, &other.id).unwrap().specs(),
            from_rows(c, &other.id)
        );

        // Changed: the memo of the old text must not answer.
        let mut changed = a.clone();
        changed.schedules = vec![
            schedule("15 1 * * *", true, ScheduleKind::Backup, &["alpha"]),
            schedule("0 6 * * 0", true, ScheduleKind::Prune, &[]),
        ];
        changed.source_groups[1].includes = vec!["/srv/new".to_owned()];
        changed.updated_at = NOW + 3;
        save(c, Some(&a), &changed, NOW + 3);
        let built = schedule_set::for_host(c, &host.id).unwrap().specs();
        assert_eq!(built.len(), 4, "{built:?}");
        assert_eq!(built, from_rows(c, &host.id));
        assert!(built.iter().any(|s| s.cron_expr == "15 1 * * *"
            && s.source_groups[0].includes == vec!["/srv/new".to_owned()]));
    });
}

fn revision(c: &mut DbConnection) -> i64 {
    use diesel::prelude::*;
    use restic_manager::store::schema::policy_revision;
    policy_revision::table
        .select(policy_revision::revision)
        .first(c)
        .unwrap()
}

/// Every write to `policies` gives the revision a new value (the memo of
/// rendered policies is keyed by it), and a policy changed on another
/// connection — another process, say `restic-manager apply` — is what
/// the next `schedule.set` carries, not the rendering held in memory; the
/// assembled frame carries what the rows do.
#[test]
fn a_policy_written_elsewhere_is_seen_at_the_next_read() {
    for_each_backend("schedule_set_revision", |pool, _| {
        let mut conn = pool.get().unwrap();
        let mut elsewhere = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let r0 = revision(c);
        let a = policy(
            "a",
            vec![group("alpha", true)],
            vec![schedule(
                "0 1 * * *",
                true,
                ScheduleKind::Backup,
                &["alpha"],
            )],
            NOW + 1,
        );
        save(c, None, &a, NOW + 1);
        let r1 = revision(c);
        assert_ne!(r0, r1, "insert");
        let built = schedule_set::for_host(c, &host.id).unwrap();
        assert_eq!(built.specs(), from_rows(c, &host.id));
        let frame: serde_json::Value = serde_json::from_str(&built.frame(3)).unwrap();
        assert_eq!(frame["type"], "schedule.set");
        assert_eq!(frame["data"]["version"], 3);
        assert_eq!(
            frame["data"]["schedules"],
            serde_json::to_value(from_rows(c, &host.id)).unwrap()
        );

        // The policy's text alone changes, on another connection.
        let mut changed = a.clone();
        changed.schedules[0].cron_expr = "45 3 * * *".to_owned();
        changed.updated_at = NOW + 2;
        policies::update(&mut elsewhere, &changed).unwrap().unwrap();
        let r2 = revision(c);
        assert_ne!(r1, r2, "update");
        let built = schedule_set::for_host(c, &host.id).unwrap().specs();
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].cron_expr, "45 3 * * *", "{built:?}");

        // Gone: the host's rows explain themselves (fallback), no panic.
        policies::delete(&mut elsewhere, &a.id).unwrap();
        assert_ne!(r2, revision(c), "delete");
        assert_eq!(
            schedule_set::for_host(c, &host.id).unwrap().specs(),
            from_rows(c, &host.id)
        );
    });
}
