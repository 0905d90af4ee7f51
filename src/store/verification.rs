//! Verification (issue 11 §4), store side: the newest restore drills per
//! host and source group, and the check rotation that makes successive
//! checks read different parts of a repository's data.
//!
//! - Drills are jobs of kind `drill` whose `tag` is the source group; the
//!   reads here go through the index `jobs_kind_status_host_tag_finished`
//!   (migration `verification`), so `/metrics` walks the succeeded drills
//!   only, never every job.
//! - Table `check_rotation`: per host (one repository per host) the number
//!   of subsets `n`, the subset `k` (1-based) the next rotating check reads
//!   with `--read-data-subset=k/n`, and how many rotating checks were
//!   issued. Table `check_runs`: the last `n` rotating checks of each host
//!   with the subset each reads; a run whose job succeeded counts as read.
//!   Both are written with the check job, in its transaction (a run-now
//!   on PostgreSQL: in its one statement, `CheckStep::pg_writes`).

use std::collections::{BTreeMap, BTreeSet};

use diesel::prelude::*;

use super::models::Job;
use super::schema::{hosts, jobs};
use super::{DbConnection, JobKind, JobStatus};
use crate::ids::{HostId, JobId};

/// Subsets a repository's data is split into when nothing else is set.
pub const DEFAULT_CHECK_SUBSETS: i64 = 30;

diesel::table! {
    check_rotation (host_id) {
        host_id -> Text,
        subsets -> BigInt,
        next_subset -> BigInt,
        runs -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    check_runs (host_id, run) {
        host_id -> Text,
        run -> BigInt,
        subset -> BigInt,
        subsets -> BigInt,
        job_id -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(check_runs, jobs);
diesel::allow_tables_to_appear_in_same_query!(check_runs, check_rotation);
diesel::allow_tables_to_appear_in_same_query!(check_rotation, jobs);

/// The subset read after `k` of `n` (1-based, wrapping after `n`). An
/// out-of-range `k` (after `n` changed) starts over at 1.
pub fn subset_after(k: i64, n: i64) -> i64 {
    if n <= 0 || k < 1 || k >= n {
        1
    } else {
        k + 1
    }
}

/// restic's flag for subset `k` of `n`.
pub fn subset_arg(k: i64, n: i64) -> String {
    format!("--read-data-subset={k}/{n}")
}

/// Where a host's check rotation stands: its `check_rotation` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = check_rotation)]
pub struct RotationRow {
    pub subsets: i64,
    pub next_subset: i64,
    pub runs: i64,
}

/// The host's check rotation, `None` before its first rotating check.
pub fn rotation_of(conn: &mut DbConnection, host_id: &str) -> QueryResult<Option<RotationRow>> {
    check_rotation::table
        .find(host_id)
        .select(RotationRow::as_select())
        .first(conn)
        .optional()
}

/// One rotating check of a host, created as job `job_id`: the subset `k`
/// of `n` it reads, its run number, and the writes that advance the
/// rotation and record the run (keeping the last `n`), all in the
/// transaction (or, on PostgreSQL, the statement) that inserts the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStep {
    pub host_id: HostId,
    pub job_id: JobId,
    pub k: i64,
    pub n: i64,
    pub run: i64,
    pub now: i64,
}

impl CheckStep {
    /// The step after `prev`: the host's next subset of `n`, or 1 at
    /// first, or when `n` changed.
    pub fn after(
        prev: Option<RotationRow>,
        host_id: HostId,
        job_id: JobId,
        n: i64,
        now: i64,
    ) -> Self {
        let n = n.max(1);
        let (k, run) = match prev {
            Some(r) if r.subsets == n && (1..=n).contains(&r.next_subset) => {
                (r.next_subset, r.runs + 1)
            }
            Some(r) => (1, r.runs + 1),
            None => (1, 1),
        };
        CheckStep {
            host_id,
            job_id,
            k,
            n,
            run,
            now,
        }
    }

    /// The job's arguments: restic's flag for this subset.
    pub fn args(&self) -> Vec<String> {
        vec![subset_arg(self.k, self.n)]
    }

    /// Writes the step: on PostgreSQL in one statement (its
    /// [`CheckStep::pg_writes`]), on SQLite one statement each (update,
    /// else insert: no upsert on the multi-backend connection; the one
    /// writer runs it). PostgreSQL's run-now writes the parts inside the
    /// job's statement instead (`jobs::insert_audited`).
    pub fn write(&self, conn: &mut DbConnection) -> QueryResult<()> {
        #[cfg(feature = "postgres")]
        if let DbConnection::Pg(pg) = conn {
            use diesel::sql_types::Bool;
            super::prepared::with_writes(self.pg_writes(), diesel::select(true.into_sql::<Bool>()))
                .get_result::<bool>(pg)?;
            return Ok(());
        }
        let updated = diesel::update(check_rotation::table.find(&self.host_id))
            .set(self.rotation())
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(check_rotation::table)
                .values((check_rotation::host_id.eq(&self.host_id), self.rotation()))
                .execute(conn)?;
        }
        diesel::insert_into(check_runs::table)
            .values(self.run_row())
            .execute(conn)?;
        diesel::delete(self.pruned()).execute(conn)?;
        Ok(())
    }

    /// The step's writes as parts of one PostgreSQL statement
    /// (`prepared::with_writes`): the rotation's upsert, the run's insert
    /// and the prune of the runs past the last `n`. The prune sees the
    /// runs before the statement, never the one it inserts
    /// (`run > run - n`).
    #[cfg(feature = "postgres")]
    pub fn pg_writes(&self) -> Vec<super::prepared::BoxedWrite<'_, diesel::pg::Pg>> {
        vec![
            Box::new(
                diesel::insert_into(check_rotation::table)
                    .values((check_rotation::host_id.eq(&self.host_id), self.rotation()))
                    .on_conflict(check_rotation::host_id)
                    .do_update()
                    .set(self.rotation()),
            ),
            Box::new(diesel::insert_into(check_runs::table).values(self.run_row())),
            Box::new(diesel::delete(self.pruned())),
        ]
    }

    /// The rotation's row after this step (but its host).
    #[allow(clippy::type_complexity)] // diesel's changeset tuple
    fn rotation(
        &self,
    ) -> (
        diesel::dsl::Eq<check_rotation::subsets, i64>,
        diesel::dsl::Eq<check_rotation::next_subset, i64>,
        diesel::dsl::Eq<check_rotation::runs, i64>,
        diesel::dsl::Eq<check_rotation::updated_at, i64>,
    ) {
        (
            check_rotation::subsets.eq(self.n),
            check_rotation::next_subset.eq(subset_after(self.k, self.n)),
            check_rotation::runs.eq(self.run),
            check_rotation::updated_at.eq(self.now),
        )
    }

    #[allow(clippy::type_complexity)] // diesel's insertable tuple
    fn run_row(
        &self,
    ) -> (
        diesel::dsl::Eq<check_runs::host_id, &HostId>,
        diesel::dsl::Eq<check_runs::run, i64>,
        diesel::dsl::Eq<check_runs::subset, i64>,
        diesel::dsl::Eq<check_runs::subsets, i64>,
        diesel::dsl::Eq<check_runs::job_id, &JobId>,
    ) {
        (
            check_runs::host_id.eq(&self.host_id),
            check_runs::run.eq(self.run),
            check_runs::subset.eq(self.k),
            check_runs::subsets.eq(self.n),
            check_runs::job_id.eq(&self.job_id),
        )
    }

    /// The host's runs past the last `n`, this one counted.
    #[allow(clippy::type_complexity)] // diesel's filtered table
    fn pruned(
        &self,
    ) -> diesel::dsl::Filter<
        diesel::dsl::Filter<check_runs::table, diesel::dsl::Eq<check_runs::host_id, &HostId>>,
        diesel::dsl::LtEq<check_runs::run, i64>,
    > {
        check_runs::table
            .filter(check_runs::host_id.eq(&self.host_id))
            .filter(check_runs::run.le(self.run - self.n))
    }
}

/// A rotating check of `host_id` is being created as job `job_id`: takes
/// the host's next subset of `n` (1 at first, or when `n` changed),
/// advances the rotation and records the run (keeping the last `n`).
/// Returns `(k, n)`: a read and the step's write, two round trips on
/// PostgreSQL. (A run-now reads the rotation with its host and writes the
/// [`CheckStep`] with its job instead.)
pub fn rotate_check(
    conn: &mut DbConnection,
    host_id: &HostId,
    job_id: &JobId,
    n: i64,
    now: i64,
) -> QueryResult<(i64, i64)> {
    let prev = rotation_of(conn, host_id.as_str())?;
    let step = CheckStep::after(prev, host_id.clone(), job_id.clone(), n, now);
    step.write(conn)?;
    Ok((step.k, step.n))
}

/// How much of a host's data its last `subsets` rotating checks read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub host_id: String,
    /// Distinct subsets read by succeeded checks among the last runs.
    pub read: i64,
    /// The rotation's `n` (0: no rotating check yet).
    pub subsets: i64,
}

impl Coverage {
    /// `read / subsets`, 0 without a rotation.
    pub fn ratio(&self) -> f64 {
        if self.subsets <= 0 {
            0.0
        } else {
            self.read as f64 / self.subsets as f64
        }
    }
}

/// The check coverage of every live host, by host id; a host without a
/// rotating check reads 0 of 0. One read of the live hosts and the two of
/// [`rotations_and_reads`].
pub fn check_coverage(conn: &mut DbConnection) -> QueryResult<Vec<Coverage>> {
    let live: Vec<String> = hosts::table
        .filter(hosts::revoked_at.is_null())
        .select(hosts::id)
        .load(conn)?;
    let (rotations, read) = rotations_and_reads(conn, None)?;
    let mut out: Vec<Coverage> = live
        .into_iter()
        .map(|host_id| coverage(host_id, &rotations, &read))
        .collect();
    // Sorted here, not by the database, whose collation may differ.
    out.sort_by(|a, b| a.host_id.cmp(&b.host_id));
    Ok(out)
}

/// The check coverage of one host, which the caller knows to be live,
/// given its rotation `n` read with it (`store::host_state::for_page`;
/// `None`: no rotating check yet, and no statement at all): the subsets
/// its runs read.
pub fn host_check_coverage_of(
    conn: &mut DbConnection,
    host_id: &str,
    subsets: Option<i64>,
) -> QueryResult<Coverage> {
    let read = match subsets {
        Some(_) => reads(conn, Some(host_id))?
            .get(host_id)
            .map_or(0, |s| s.len() as i64),
        None => 0,
    };
    Ok(Coverage {
        host_id: host_id.to_owned(),
        read,
        subsets: subsets.unwrap_or(0),
    })
}

/// Each host's rotation `n` and the distinct subsets its succeeded checks
/// read among the kept runs (at most `n` per host, joined to their jobs by
/// primary key), of every host or of `host_id` only: two reads.
#[allow(clippy::type_complexity)] // two maps by host id, named in the doc
fn rotations_and_reads(
    conn: &mut DbConnection,
    host_id: Option<&str>,
) -> QueryResult<(BTreeMap<String, i64>, BTreeMap<String, BTreeSet<i64>>)> {
    let mut rotations = check_rotation::table
        .select((check_rotation::host_id, check_rotation::subsets))
        .into_boxed();
    if let Some(id) = host_id {
        rotations = rotations.filter(check_rotation::host_id.eq(id.to_owned()));
    }
    let rotations: BTreeMap<String, i64> = rotations.load(conn)?.into_iter().collect();
    Ok((rotations, reads(conn, host_id)?))
}

/// The distinct subsets each host's succeeded checks read among the kept
/// runs of its current rotation, of every host or of `host_id` only.
fn reads(
    conn: &mut DbConnection,
    host_id: Option<&str>,
) -> QueryResult<BTreeMap<String, BTreeSet<i64>>> {
    let mut runs = check_runs::table
        .inner_join(jobs::table.on(jobs::id.eq(check_runs::job_id)))
        .inner_join(
            check_rotation::table.on(check_rotation::host_id
                .eq(check_runs::host_id)
                .and(check_rotation::subsets.eq(check_runs::subsets))),
        )
        .filter(jobs::status.eq(JobStatus::Succeeded))
        .select((check_runs::host_id, check_runs::subset))
        .into_boxed();
    if let Some(id) = host_id {
        runs = runs.filter(check_runs::host_id.eq(id.to_owned()));
    }
    let mut read: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for (host, subset) in runs.load::<(String, i64)>(conn)? {
        read.entry(host).or_default().insert(subset);
    }
    Ok(read)
}

fn coverage(
    host_id: String,
    rotations: &BTreeMap<String, i64>,
    read: &BTreeMap<String, BTreeSet<i64>>,
) -> Coverage {
    Coverage {
        read: read.get(&host_id).map_or(0, |s| s.len() as i64),
        subsets: rotations.get(&host_id).copied().unwrap_or(0),
        host_id,
    }
}

/// One row of [`last_verified_restores`]: host id, source group (the
/// drill's tag) and the finish time (Unix ms).
pub type LastDrill = (String, String, i64);

/// The finish time of the newest succeeded drill per live host and source
/// group, by host and group.
pub fn last_verified_restores(conn: &mut DbConnection) -> QueryResult<Vec<LastDrill>> {
    let rows: Vec<(String, Option<String>, Option<i64>)> = jobs::table
        .filter(jobs::kind.eq(JobKind::Drill))
        .filter(jobs::status.eq(JobStatus::Succeeded))
        .filter(jobs::tag.is_not_null())
        .filter(jobs::finished_at.is_not_null())
        .filter(
            jobs::host_id.eq_any(
                hosts::table
                    .filter(hosts::revoked_at.is_null())
                    .select(hosts::id),
            ),
        )
        .group_by((jobs::host_id, jobs::tag))
        .select((
            jobs::host_id,
            jobs::tag,
            diesel::dsl::max(jobs::finished_at),
        ))
        .order((jobs::host_id.asc(), jobs::tag.asc()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(host, tag, at)| Some((host, tag?, at?)))
        .collect())
}

/// The newest drill of a host that succeeded or failed (the host page's
/// "Last verified restore").
pub fn latest_drill(conn: &mut DbConnection, host_id: &str) -> QueryResult<Option<Job>> {
    jobs::table
        .filter(jobs::kind.eq(JobKind::Drill))
        .filter(jobs::status.eq_any([JobStatus::Succeeded, JobStatus::Failed]))
        .filter(jobs::host_id.eq(host_id))
        .filter(jobs::finished_at.is_not_null())
        .order((jobs::finished_at.desc(), jobs::id.desc()))
        .select(Job::as_select())
        .first(conn)
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// k advances by one and wraps after n; n runs read every subset once.
    #[test]
    fn rotation_covers_every_subset() {
        assert_eq!(subset_after(1, 30), 2);
        assert_eq!(subset_after(29, 30), 30);
        assert_eq!(subset_after(30, 30), 1);
        assert_eq!(subset_after(31, 30), 1, "n shrank: start over");
        assert_eq!(subset_after(0, 30), 1);
        assert_eq!(subset_after(1, 1), 1);
        assert_eq!(subset_after(5, 0), 1);
        let mut k = 1;
        let mut seen = BTreeSet::new();
        for _ in 0..7 {
            seen.insert(k);
            k = subset_after(k, 7);
        }
        assert_eq!(seen, (1..=7).collect());
        assert_eq!(k, 1, "the eighth run starts the next cycle");
        assert_eq!(subset_arg(3, 30), "--read-data-subset=3/30");
    }

    /// The ratio is read over n, 0 without a rotation.
    #[test]
    fn coverage_ratio() {
        let c = |read, subsets| Coverage {
            host_id: "h".into(),
            read,
            subsets,
        };
        assert_eq!(c(15, 30).ratio(), 0.5);
        assert_eq!(c(0, 0).ratio(), 0.0);
    }
}
