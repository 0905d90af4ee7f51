//! Unit tests of `cron`, in their own file so the module reads as one idea.

use super::*;
use crate::protocol::ScheduleKind;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn spec(id: &str, expr: &str, enabled: bool) -> ScheduleSpec {
    ScheduleSpec {
        id: id.to_owned(),
        cron_expr: expr.to_owned(),
        enabled,
        kind: ScheduleKind::Backup,
        source_groups: Vec::new(),
    }
}

fn set(version: u64, schedules: Vec<ScheduleSpec>) -> ScheduleSet {
    ScheduleSet { version, schedules }
}

fn fire(id: &str, when: &str) -> ScheduleFire {
    ScheduleFire {
        schedule_id: id.to_owned(),
        scheduled_at: at(when),
        kind: Some(ScheduleKind::Backup),
    }
}

/// A check schedule's fire carries its kind, when due and when sent
/// later from the pending list; a table saved before kinds (no
/// `kind` in its specs) loads as backups.
#[test]
fn fires_carry_the_kind() {
    let mut table = CronTable::new();
    let check = ScheduleSpec {
        kind: ScheduleKind::Check,
        ..spec("c", "0 4 * * *", true)
    };
    table
        .apply(&set(1, vec![check]), at("2026-11-23T01:00:00Z"))
        .unwrap();
    let due = table.tick(at("2026-11-23T04:00:00Z"));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].kind, Some(ScheduleKind::Check));
    assert_eq!(table.pending()[0].kind, Some(ScheduleKind::Check));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schedule.json"),
        r#"{"version":3,"schedules":[{"spec":{"id":"old","cron_expr":"@daily","enabled":true},"last_checked":"2026-11-23T00:00:00Z"}],"pending":{"old":"2026-11-23T00:00:00Z"}}"#,
    )
    .unwrap();
    let loaded = CronTable::load(dir.path());
    assert_eq!(
        loaded.schedules().next().map(|s| s.kind),
        Some(ScheduleKind::Backup)
    );
    assert_eq!(loaded.pending()[0].kind, Some(ScheduleKind::Backup));
}

/// A daily schedule fires once at its time, not before, not twice.
#[test]
fn fires_at_due_time_once() {
    let mut table = CronTable::new();
    table
        .apply(
            &set(1, vec![spec("s1", "0 2 * * *", true)]),
            at("2026-11-23T01:00:00Z"),
        )
        .unwrap();
    assert_eq!(table.version(), 1);
    assert!(table.tick(at("2026-11-23T01:59:59Z")).is_empty());
    assert_eq!(
        table.tick(at("2026-11-23T02:00:00Z")),
        vec![fire("s1", "2026-11-23T02:00:00Z")]
    );
    assert!(table.tick(at("2026-11-23T02:00:30Z")).is_empty());
    assert_eq!(
        table.next_wake(at("2026-11-23T02:00:30Z")),
        at("2026-11-23T02:01:30Z")
    );
    assert_eq!(
        table.next_wake(at("2026-11-24T01:59:30Z")),
        at("2026-11-24T02:00:00Z")
    );
}

/// Many missed slots give one fire, with the latest missed time, and it
/// stays pending until marked sent.
#[test]
fn missed_fires_coalesce() {
    let mut table = CronTable::new();
    table
        .apply(
            &set(
                1,
                vec![
                    spec("hourly", "0 * * * *", true),
                    spec("daily", "30 3 * * *", true),
                ],
            ),
            at("2026-11-23T00:10:00Z"),
        )
        .unwrap();
    let fires = table.tick(at("2026-11-25T05:20:00Z"));
    assert_eq!(
        fires,
        vec![
            fire("hourly", "2026-11-25T05:00:00Z"),
            fire("daily", "2026-11-25T03:30:00Z"),
        ]
    );
    assert_eq!(
        table.pending(),
        vec![
            fire("daily", "2026-11-25T03:30:00Z"),
            fire("hourly", "2026-11-25T05:00:00Z")
        ]
    );
    // Offline another hour: the newer hourly fire replaces the old one.
    table.tick(at("2026-11-25T06:05:00Z"));
    assert_eq!(
        table.take_pending(),
        vec![
            fire("daily", "2026-11-25T03:30:00Z"),
            fire("hourly", "2026-11-25T06:00:00Z")
        ]
    );
    assert!(table.pending().is_empty());
}

/// Disabled schedules never fire, and enabling one later does not fire
/// the times that passed while it was disabled.
#[test]
fn disabled_schedules() {
    let mut table = CronTable::new();
    table
        .apply(
            &set(1, vec![spec("s", "*/5 * * * *", false)]),
            at("2026-11-23T00:00:00Z"),
        )
        .unwrap();
    assert!(table.tick(at("2026-11-23T01:00:00Z")).is_empty());
    table
        .apply(
            &set(2, vec![spec("s", "*/5 * * * *", true)]),
            at("2026-11-23T01:02:00Z"),
        )
        .unwrap();
    assert!(table.tick(at("2026-11-23T01:04:59Z")).is_empty());
    assert_eq!(
        table.tick(at("2026-11-23T01:05:00Z")),
        vec![fire("s", "2026-11-23T01:05:00Z")]
    );
}

/// An unchanged schedule keeps its progress across a new version; a
/// changed expression starts over; an empty set disables everything
/// and drops pending fires.
#[test]
fn reapply_keeps_progress() {
    let mut table = CronTable::new();
    table
        .apply(
            &set(1, vec![spec("s", "0 * * * *", true)]),
            at("2026-11-23T00:30:00Z"),
        )
        .unwrap();
    // Offline across 01:00; a new version arrives at 01:10 before a tick.
    table
        .apply(
            &set(
                2,
                vec![spec("s", "0 * * * *", true), spec("t", "0 * * * *", true)],
            ),
            at("2026-11-23T01:10:00Z"),
        )
        .unwrap();
    assert_eq!(
        table.tick(at("2026-11-23T01:11:00Z")),
        vec![fire("s", "2026-11-23T01:00:00Z")]
    );
    table
        .apply(&set(3, Vec::new()), at("2026-11-23T01:12:00Z"))
        .unwrap();
    assert!(table.pending().is_empty());
    assert!(table.tick(at("2026-11-23T09:00:00Z")).is_empty());
    assert_eq!(table.schedules().count(), 0);
}

/// A set with a bad expression or a duplicate id changes nothing.
#[test]
fn apply_is_atomic() {
    let mut table = CronTable::new();
    table
        .apply(
            &set(1, vec![spec("s", "0 2 * * *", true)]),
            at("2026-11-23T00:00:00Z"),
        )
        .unwrap();
    let err = table
        .apply(
            &set(
                2,
                vec![spec("a", "0 3 * * *", true), spec("b", "61 * * * *", true)],
            ),
            at("2026-11-23T00:00:00Z"),
        )
        .unwrap_err();
    assert!(
        matches!(err, CronError::BadExpression { ref id, .. } if id == "b"),
        "{err}"
    );
    let err = table
        .apply(
            &set(
                2,
                vec![spec("a", "0 3 * * *", true), spec("a", "0 4 * * *", true)],
            ),
            at("2026-11-23T00:00:00Z"),
        )
        .unwrap_err();
    assert!(matches!(err, CronError::DuplicateId(_)));
    assert_eq!(table.version(), 1);
    let ids: Vec<_> = table.schedules().map(|s| s.id.clone()).collect();
    assert_eq!(ids, vec!["s"]);
}

/// The clock going back never fires a handled time again.
#[test]
fn clock_going_back() {
    let mut table = CronTable::new();
    table
        .apply(
            &set(1, vec![spec("s", "0 * * * *", true)]),
            at("2026-11-23T00:30:00Z"),
        )
        .unwrap();
    assert_eq!(table.tick(at("2026-11-23T01:00:00Z")).len(), 1);
    assert!(table.tick(at("2026-11-23T00:45:00Z")).is_empty());
    assert!(table.tick(at("2026-11-23T01:00:00Z")).is_empty());
    assert_eq!(table.tick(at("2026-11-23T02:00:00Z")).len(), 1);
}

/// The table and its pending fires survive a restart, and a time that
/// passed while the agent was down fires once after it.
#[test]
fn state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut table = CronTable::load(dir.path());
        table
            .apply(
                &set(
                    7,
                    vec![spec("a", "0 2 * * *", true), spec("b", "0 3 * * *", true)],
                ),
                at("2026-11-23T01:00:00Z"),
            )
            .unwrap();
        assert_eq!(table.tick(at("2026-11-23T02:00:05Z")).len(), 1); // pending, unsent
    }
    let mut table = CronTable::load(dir.path());
    assert_eq!(table.version(), 7);
    assert_eq!(table.pending(), vec![fire("a", "2026-11-23T02:00:00Z")]);
    // The agent was down across 03:00: fires once, on the first tick.
    assert_eq!(
        table.tick(at("2026-11-23T04:00:00Z")),
        vec![fire("b", "2026-11-23T03:00:00Z")]
    );
    assert!(table.tick(at("2026-11-23T04:00:01Z")).is_empty());
    assert_eq!(table.take_pending().len(), 2);
    let table = CronTable::load(dir.path());
    assert!(table.pending().is_empty());
}

/// A corrupt state file gives an empty table, not a failure.
#[test]
fn corrupt_state_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schedule.json"), b"{\"version\":").unwrap();
    let table = CronTable::load(dir.path());
    assert_eq!(table.version(), 0);
}

/// Fires carry whole-second cron times even when ticked between
/// seconds.
#[test]
fn fire_times_are_whole_seconds() {
    let mut table = CronTable::new();
    table
        .apply(
            &set(1, vec![spec("s", "0 * * * *", true)]),
            at("2026-11-23T00:10:00.250Z"),
        )
        .unwrap();
    assert_eq!(
        table.tick(at("2026-11-23T03:20:07.987654321Z")),
        vec![fire("s", "2026-11-23T03:00:00Z")]
    );
    assert_eq!(
        table.next_wake(at("2026-11-23T03:59:30.5Z")),
        at("2026-11-23T04:00:00Z")
    );
}

/// Without enabled schedules the agent still wakes every minute.
#[test]
fn wake_cap() {
    let table = CronTable::new();
    let now = at("2026-11-23T00:00:00Z");
    assert_eq!(table.next_wake(now), at("2026-11-23T00:01:00Z"));
}
