//! The writer's host writes (`hello` is in `hellos`): a session's end, revocation, and
//! what a host reports about its repository (snapshots, stats), plus the
//! missed runs the scheduler detects, and its Docker discovery report.
//! Each replies once durable.

use actix::prelude::*;

use super::{PersistResult, Persistence};
use crate::ids::{HostId, ScheduleId};
use crate::notify;
use crate::protocol;
use crate::store::models::{Job, NewMissedRun, NewRepoStats, NewSnapshot};
use crate::store::{
    self, catalog, discovery, hosts, missed_runs, notifications, repo_stats, snapshots,
};

/// The host's session ended (sent by the registry for the current session
/// only, so a superseded session never marks its host offline).
#[derive(Message)]
#[rtype(result = "PersistResult<bool>")]
pub struct MarkOffline {
    pub host_id: HostId,
    pub now: i64,
}

impl Handler<MarkOffline> for Persistence {
    type Result = PersistResult<bool>;

    fn handle(&mut self, msg: MarkOffline, _ctx: &mut Self::Context) -> Self::Result {
        self.touched.remove(msg.host_id.as_str());
        self.write("marking offline", &msg.host_id, None, |c| {
            hosts::set_online(c, &msg.host_id, false, msg.now)
        })
    }
}

/// `snapshots.report`: replaces the host's snapshot projection and, in
/// the same transaction, applies it to the catalog (forgotten snapshots
/// leave it, new ones get a `catalog` job).
#[derive(Message)]
#[rtype(result = "PersistResult<SnapshotsReplaced>")]
pub struct ReplaceSnapshots {
    pub host_id: HostId,
    pub payload: protocol::SnapshotsReport,
    pub now: i64,
}

/// A counter for a BIGINT column; a value past `i64::MAX` is stored as
/// unknown rather than wrapped.
fn to_i64(value: Option<u64>) -> Option<i64> {
    value.and_then(|v| i64::try_from(v).ok())
}

/// What a `snapshots.report` stored and changed.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotsReplaced {
    /// Snapshots stored.
    pub stored: usize,
    /// `catalog` jobs queued for snapshots not catalogued yet.
    pub catalog_jobs: Vec<Job>,
}

impl Handler<ReplaceSnapshots> for Persistence {
    type Result = PersistResult<SnapshotsReplaced>;

    fn handle(&mut self, msg: ReplaceSnapshots, _ctx: &mut Self::Context) -> Self::Result {
        let mut rows: Vec<NewSnapshot> = msg
            .payload
            .snapshots
            .iter()
            .map(|s| NewSnapshot {
                snapshot_id: s.id.clone(),
                short_id: s.short_id.clone(),
                time: s.time.timestamp_millis(),
                hostname: s.hostname.clone(),
                paths: s.paths.clone(),
                tags: s.tags.clone(),
                size_bytes: to_i64(s.size_bytes),
                file_count: to_i64(s.file_count),
            })
            .collect();
        let keep = self.catalog_keep;
        self.write("replacing snapshots", &msg.host_id, None, |c| {
            store::write_transaction(c, |c| {
                snapshots::fill_from_backups(c, &msg.host_id, &mut rows)?;
                let stored = snapshots::replace_for_host(c, &msg.host_id, &rows, msg.now)?;
                let catalogs = hosts::get(c, &msg.host_id)?
                    .is_some_and(|h| h.has_capability(protocol::CAPABILITY_CATALOG));
                let catalog =
                    catalog::lifecycle::after_report(c, &msg.host_id, keep, catalogs, msg.now)?;
                if !catalog.dropped.is_empty() {
                    tracing::info!(host_id = %msg.host_id, dropped = catalog.dropped.len(), "catalogs of forgotten snapshots dropped");
                }
                Ok(SnapshotsReplaced {
                    stored,
                    catalog_jobs: catalog.jobs,
                })
            })
        })
    }
}

/// `repo.stats`: one sample of the time series.
#[derive(Message)]
#[rtype(result = "PersistResult<()>")]
pub struct StoreRepoStats {
    pub host_id: HostId,
    pub payload: protocol::RepoStats,
    pub now: i64,
}

impl Handler<StoreRepoStats> for Persistence {
    type Result = PersistResult<()>;

    fn handle(&mut self, msg: StoreRepoStats, _ctx: &mut Self::Context) -> Self::Result {
        let p = &msg.payload;
        let row = NewRepoStats {
            id: store::new_id(),
            host_id: msg.host_id.to_string(),
            recorded_at: msg.now,
            size_bytes: to_i64(Some(p.size_bytes)),
            snapshot_count: to_i64(Some(p.snapshot_count)),
            dedup_ratio: Some(p.dedup_ratio),
            last_check_at: p.last_check_at.map(|t| t.timestamp_millis()),
            last_check_status: p.last_check_status.clone(),
            lock_state: Some(p.lock_state.as_str().to_owned()),
        };
        self.write("storing repository stats", &msg.host_id, None, |c| {
            repo_stats::insert(c, &row).map(|_| ())
        })
    }
}

/// Revoke a host's token. Replies false if it did not exist or was
/// already revoked.
#[derive(Message)]
#[rtype(result = "PersistResult<bool>")]
pub struct RevokeHost {
    pub host_id: HostId,
    pub now: i64,
}

impl Handler<RevokeHost> for Persistence {
    type Result = PersistResult<bool>;

    fn handle(&mut self, msg: RevokeHost, _ctx: &mut Self::Context) -> Self::Result {
        self.write("revoking a host", &msg.host_id, None, |c| {
            hosts::revoke(c, &msg.host_id, msg.now)
        })
    }
}

/// A schedule time passed without a fire. Replies true if this call
/// recorded it (false: already known).
#[derive(Message)]
#[rtype(result = "PersistResult<bool>")]
pub struct RecordMissedRun {
    pub missed: NewMissedRun,
}

impl Handler<RecordMissedRun> for Persistence {
    type Result = PersistResult<bool>;

    fn handle(&mut self, msg: RecordMissedRun, _ctx: &mut Self::Context) -> Self::Result {
        let host_id = msg.missed.host_id.clone();
        let missed = msg.missed;
        self.write("recording a missed run", &host_id, None, |c| {
            store::write_transaction(c, |c| {
                let recorded = missed_runs::insert_ignore(c, &missed)?;
                if recorded {
                    let event = notify::run_event(
                        &HostId::from(missed.host_id.as_str()),
                        &ScheduleId::from(missed.schedule_id.as_str()),
                        true,
                        missed.detected_at,
                    );
                    notifications::emit(c, &event)?;
                }
                Ok(recorded)
            })
        })
    }
}

/// `discovery.report`: replaces the host's latest Docker discovery report
/// (the session has bounded it and removed any secret value).
#[derive(Message)]
#[rtype(result = "PersistResult<()>")]
pub struct StoreDiscovery {
    pub host_id: HostId,
    pub payload: protocol::DiscoveryReport,
    pub now: i64,
}

impl Handler<StoreDiscovery> for Persistence {
    type Result = PersistResult<()>;

    fn handle(&mut self, msg: StoreDiscovery, _ctx: &mut Self::Context) -> Self::Result {
        self.write("storing a discovery report", &msg.host_id, None, |c| {
            discovery::put(c, &msg.host_id, &msg.payload.containers, msg.now)
        })
    }
}
