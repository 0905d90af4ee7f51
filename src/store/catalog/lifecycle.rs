//! What a `snapshots.report` changes in the catalog ([`after_report`]),
//! in the transaction that stores the report: catalogs of snapshots the
//! report no longer lists (removed by `forget`) are dropped, and each of
//! the newest `keep` snapshots per source group that is neither
//! catalogued nor being catalogued gets a `catalog` job.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use super::ingest::drop_catalog;
use super::{catalog_snapshots, STATE_COMPLETE};
use crate::store::models::{Job, NewJob};
use crate::store::schema::jobs;
use crate::store::JobTrigger;
use crate::store::{jobs as job_queries, new_id, snapshots, DbConnection, JobKind, JobStatus};

/// A snapshot's source group: its first tag (backups are tagged with
/// their group's name), `""` for an untagged snapshot.
pub fn group_of(tags: &[String]) -> String {
    tags.first().cloned().unwrap_or_default()
}

/// What a report changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AfterReport {
    /// Snapshot ids whose catalog was dropped (no longer listed).
    pub dropped: Vec<String>,
    /// `catalog` jobs created (queued).
    pub jobs: Vec<Job>,
}

/// Applies the host's freshly stored snapshot list to the catalog (see
/// the module doc). Call inside the transaction that stored the list.
/// `queue_jobs`: whether to queue `catalog` jobs (not for an agent
/// without the `catalog` capability, which could not run them).
pub fn after_report(
    conn: &mut DbConnection,
    host_id: &str,
    keep: usize,
    queue_jobs: bool,
    now: i64,
) -> QueryResult<AfterReport> {
    let listed = snapshots::list_for_host(conn, host_id)?; // newest first
    let listed_ids: HashSet<&str> = listed.iter().map(|s| s.snapshot_id.as_str()).collect();
    let rows: Vec<(i64, String, String)> = catalog_snapshots::table
        .filter(catalog_snapshots::host_id.eq(host_id))
        .select((
            catalog_snapshots::id,
            catalog_snapshots::snapshot_id,
            catalog_snapshots::state,
        ))
        .load(conn)?;
    let mut out = AfterReport::default();
    let mut complete = HashSet::new();
    for (id, snapshot_id, state) in rows {
        if listed_ids.contains(snapshot_id.as_str()) {
            if state == STATE_COMPLETE {
                complete.insert(snapshot_id);
            }
        } else {
            drop_catalog(conn, id)?;
            out.dropped.push(snapshot_id);
        }
    }
    if !queue_jobs {
        return Ok(out);
    }
    let active: HashSet<String> = jobs::table
        .filter(jobs::host_id.eq(host_id))
        .filter(jobs::kind.eq(JobKind::Catalog))
        .filter(jobs::status.eq_any([JobStatus::Queued, JobStatus::Running]))
        .select(jobs::snapshot_id)
        .load::<Option<String>>(conn)?
        .into_iter()
        .flatten()
        .collect();
    let mut per_group: HashMap<String, usize> = HashMap::new();
    // Oldest first among the candidates, so the queue catalogues in time
    // order and the newest ends up kept by `--catalog-keep`.
    let mut wanted = Vec::new();
    for snapshot in &listed {
        let seen = per_group.entry(group_of(&snapshot.tags)).or_default();
        *seen += 1;
        if *seen > keep {
            continue;
        }
        if complete.contains(&snapshot.snapshot_id) || active.contains(&snapshot.snapshot_id) {
            continue;
        }
        wanted.push(snapshot.snapshot_id.clone());
    }
    for (offset, snapshot_id) in wanted.into_iter().rev().enumerate() {
        let new = NewJob {
            snapshot_id: Some(snapshot_id),
            // Distinct creation times keep the queue's order stable.
            ..NewJob::new(
                new_id(),
                host_id.to_owned(),
                JobKind::Catalog,
                JobTrigger::Snapshot,
                now + i64::try_from(offset).unwrap_or(0),
            )
        };
        out.jobs.push(job_queries::insert(conn, &new)?);
    }
    Ok(out)
}

/// A `catalog` job to run again after it yielded to other work: a new
/// job (the agent de-duplicates by job id) for the same snapshot, unless
/// one is queued already or the snapshot is catalogued.
pub fn requeue(conn: &mut DbConnection, yielded: &Job, now: i64) -> QueryResult<Option<Job>> {
    let Some(snapshot_id) = &yielded.snapshot_id else {
        return Ok(None);
    };
    let queued: i64 = jobs::table
        .filter(jobs::host_id.eq(&yielded.host_id))
        .filter(jobs::kind.eq(JobKind::Catalog))
        .filter(jobs::snapshot_id.eq(snapshot_id))
        .filter(jobs::status.eq(JobStatus::Queued))
        .filter(jobs::id.ne(&yielded.id))
        .count()
        .get_result(conn)?;
    let catalogued =
        super::get(conn, &yielded.host_id, snapshot_id)?.is_some_and(|row| row.is_complete());
    if queued > 0 || catalogued {
        return Ok(None);
    }
    let new = NewJob {
        snapshot_id: Some(snapshot_id.clone()),
        ..NewJob::new(
            new_id(),
            yielded.host_id.clone(),
            JobKind::Catalog,
            JobTrigger::Snapshot,
            now,
        )
    };
    job_queries::insert(conn, &new).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The group is the first tag, or empty.
    #[test]
    fn group_is_the_first_tag() {
        assert_eq!(group_of(&["etc".to_owned(), "x".to_owned()]), "etc");
        assert_eq!(group_of(&[]), "");
    }
}
