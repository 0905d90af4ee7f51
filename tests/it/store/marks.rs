//! Store tests of the schedule pushes and acks and config acks written
//! in bulk (`store::version_marks`, issue 19): on PostgreSQL one
//! `UPDATE … FROM unnest(…)` per kind and round, on SQLite one statement
//! per mark; either way the result is that of the marks written one by
//! one in arrival order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use restic_manager::store::version_marks::{self, Mark, MarkKind};
use restic_manager::store::{config_versions, schedule_versions};

use super::{add_host, for_each_backend};

fn mark(kind: MarkKind, host_id: &str, version: i64, now: i64) -> Mark {
    Mark {
        kind,
        host_id: host_id.to_owned(),
        version,
        now,
    }
}

/// Two hosts' pushes and acks in one batch, with repeats of a host and a
/// kind, a stale schedule ack and a config ack above the current version:
/// the latest push wins, only acks of the current version count (the
/// last one's time kept), and a config ack never goes past the current
/// version.
#[test]
fn bulk_marks_end_as_one_by_one() {
    for_each_backend("bulk_marks_end_as_one_by_one", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let a = add_host(c, "a").id.to_string();
        let b = add_host(c, "b").id.to_string();
        assert_eq!(schedule_versions::bump(c, &a).unwrap(), 2);
        assert_eq!(schedule_versions::bump(c, &a).unwrap(), 3);
        assert_eq!(schedule_versions::bump(c, &b).unwrap(), 2);
        let marks = [
            mark(MarkKind::Pushed, &a, 2, 10),
            mark(MarkKind::Pushed, &b, 2, 11),
            mark(MarkKind::Pushed, &a, 3, 12),
            mark(MarkKind::Acked, &a, 2, 13),
            mark(MarkKind::Acked, &a, 3, 14),
            mark(MarkKind::Acked, &a, 3, 15),
            mark(MarkKind::Acked, &b, 2, 16),
            mark(MarkKind::ConfigAcked, &a, 1, 17),
            mark(MarkKind::ConfigAcked, &b, 2, 18),
            mark(MarkKind::Pushed, "no-such-host", 1, 19),
        ];
        restic_manager::store::write_transaction(c, |c| version_marks::apply(c, &marks)).unwrap();

        let versions = |c: &mut _, id: &str| {
            let v = schedule_versions::get(c, id).unwrap().unwrap();
            (v.pushed_version, v.pushed_at, v.acked_version, v.acked_at)
        };
        assert_eq!(versions(c, &a), (3, Some(12), 3, Some(15)));
        assert_eq!(versions(c, &b), (2, Some(11), 2, Some(16)));
        let config = |c: &mut _, id: &str| {
            let v = config_versions::get(c, id).unwrap().unwrap();
            (v.acked_config_version, v.config_acked_at)
        };
        assert_eq!(config(c, &a), (1, Some(17)));
        assert_eq!(config(c, &b), (0, None), "above the current version");
    });
}
