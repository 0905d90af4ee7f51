//! Schedule pushes, schedule acks and config acks, written in bulk: every
//! hello and every schedule change leaves one push and one ack per host,
//! which the writer buffers and writes together (`actors::persistence`).
//!
//! On SQLite each mark is its own `UPDATE` (in-process, a statement costs
//! no round trip). On PostgreSQL each was a round trip, 20,000 of them
//! after 10,000 hellos; now each kind is one `UPDATE … FROM unnest(…)` per
//! *round*, where round `n` holds every host's `n`-th mark of that kind in
//! arrival order. A statement updates a row at most once, so marks of the
//! same host and kind go in successive rounds and end as the one-by-one
//! writes would; marks of different kinds change different columns, so
//! their order does not matter. Nearly always there is one round.

use std::collections::HashMap;

use diesel::prelude::*;

use super::{config_versions, schedule_versions, DbConnection};

/// What a mark records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkKind {
    /// `schedule.set` with `version` went out ([`schedule_versions::mark_pushed`]).
    Pushed,
    /// The agent acked schedule `version` ([`schedule_versions::ack`]).
    Acked,
    /// The agent acked the `config.update` of `version` ([`config_versions::ack`]).
    ConfigAcked,
}

/// One push or ack of one host at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub kind: MarkKind,
    pub host_id: String,
    pub version: i64,
    pub now: i64,
}

/// Writes `marks` in arrival order's effect; call inside a write
/// transaction.
pub fn apply(conn: &mut DbConnection, marks: &[Mark]) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(_) => {
            for mark in marks {
                apply_one(conn, mark)?;
            }
            Ok(())
        }
        #[cfg(feature = "postgres")]
        DbConnection::Pg(pg) => {
            for round in rounds(marks) {
                for kind in [MarkKind::Pushed, MarkKind::Acked, MarkKind::ConfigAcked] {
                    let of_kind: Vec<&Mark> =
                        round.iter().copied().filter(|m| m.kind == kind).collect();
                    pg::apply_kind(pg, kind, &of_kind)?;
                }
            }
            Ok(())
        }
    }
}

/// One mark, one statement.
fn apply_one(conn: &mut DbConnection, mark: &Mark) -> QueryResult<bool> {
    let Mark {
        kind,
        host_id,
        version,
        now,
    } = mark;
    match kind {
        MarkKind::Pushed => schedule_versions::mark_pushed(conn, host_id, *version, *now),
        MarkKind::Acked => schedule_versions::ack(conn, host_id, *version, *now),
        MarkKind::ConfigAcked => config_versions::ack(conn, host_id, *version, *now),
    }
}

/// Splits `marks` into rounds: round `n` holds each host's `n`-th mark of
/// each kind, in arrival order.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn rounds(marks: &[Mark]) -> Vec<Vec<&Mark>> {
    let mut seen: HashMap<(MarkKind, &str), usize> = HashMap::new();
    let mut rounds: Vec<Vec<&Mark>> = Vec::new();
    for mark in marks {
        let n = seen.entry((mark.kind, mark.host_id.as_str())).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(mark);
        *n += 1;
    }
    rounds
}

#[cfg(feature = "postgres")]
mod pg {
    use crate::store::prepared::{Affected, PrepareOnce};
    use diesel::pg::PgConnection;
    use diesel::prelude::*;
    use diesel::sql_types::{Array, BigInt, Text};

    use super::{Mark, MarkKind};

    /// The marks as `m(host_id, version, at)`.
    macro_rules! marks {
        () => {
            "unnest($1::text[], $2::bigint[], $3::bigint[]) AS m(host_id, version, at)"
        };
    }

    /// One mark statement, loaded for its count so that it is prepared
    /// once per connection (`store::prepared`).
    macro_rules! counted {
        ($($part:expr),+ $(,)?) => {
            concat!("WITH w AS (", $($part,)+ " RETURNING 1) SELECT count(*) AS n FROM w")
        };
    }

    /// One statement for all `marks` (of `kind`, one per host).
    pub(super) fn apply_kind(
        conn: &mut PgConnection,
        kind: MarkKind,
        marks: &[&Mark],
    ) -> QueryResult<usize> {
        if marks.is_empty() {
            return Ok(0);
        }
        // The same conditions as the one-mark functions
        // (`schedule_versions::{mark_pushed, ack}`, `config_versions::ack`).
        let sql = match kind {
            MarkKind::Pushed => counted!(
                "UPDATE host_schedule_version AS h SET pushed_version = m.version, pushed_at = m.at \
                 FROM ",
                marks!(),
                " WHERE h.host_id = m.host_id"
            ),
            MarkKind::Acked => counted!(
                "UPDATE host_schedule_version AS h SET acked_version = m.version, acked_at = m.at \
                 FROM ",
                marks!(),
                " WHERE h.host_id = m.host_id AND h.version = m.version"
            ),
            MarkKind::ConfigAcked => counted!(
                "UPDATE hosts AS h SET acked_config_version = m.version, config_acked_at = m.at \
                 FROM ",
                marks!(),
                " WHERE h.id = m.host_id AND h.config_version >= m.version \
                 AND h.acked_config_version < m.version"
            ),
        };
        let hosts: Vec<&str> = marks.iter().map(|m| m.host_id.as_str()).collect();
        let versions: Vec<i64> = marks.iter().map(|m| m.version).collect();
        let at: Vec<i64> = marks.iter().map(|m| m.now).collect();
        diesel::sql_query(sql)
            .bind::<Array<Text>, _>(hosts)
            .bind::<Array<BigInt>, _>(versions)
            .bind::<Array<BigInt>, _>(at)
            .prepared()
            .get_result::<Affected>(conn)
            .map(|a| usize::try_from(a.n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(kind: MarkKind, host: &str, version: i64) -> Mark {
        Mark {
            kind,
            host_id: host.into(),
            version,
            now: version,
        }
    }

    /// A host's second mark of a kind goes in the next round; other
    /// hosts' and other kinds' marks share the first.
    #[test]
    fn repeats_of_a_host_and_kind_go_in_later_rounds() {
        let marks = [
            mark(MarkKind::Pushed, "a", 1),
            mark(MarkKind::Acked, "a", 1),
            mark(MarkKind::Pushed, "b", 1),
            mark(MarkKind::Pushed, "a", 2),
            mark(MarkKind::Pushed, "a", 3),
        ];
        let rounds = rounds(&marks);
        let versions: Vec<Vec<(MarkKind, &str, i64)>> = rounds
            .iter()
            .map(|r| {
                r.iter()
                    .map(|m| (m.kind, m.host_id.as_str(), m.version))
                    .collect()
            })
            .collect();
        assert_eq!(
            versions,
            vec![
                vec![
                    (MarkKind::Pushed, "a", 1),
                    (MarkKind::Acked, "a", 1),
                    (MarkKind::Pushed, "b", 1)
                ],
                vec![(MarkKind::Pushed, "a", 2)],
                vec![(MarkKind::Pushed, "a", 3)],
            ]
        );
    }
}
