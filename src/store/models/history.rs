//! Rows of what happened, kept for reading back: the snapshots a host
//! last reported, `repo.stats` samples, missed schedule runs and the
//! audit log.

use diesel::prelude::*;
use serde_json::Value;

use crate::store::json::Json;
use crate::store::schema::{audit_log, missed_runs, repo_stats, snapshots};

/// One snapshot of the host's last `snapshots.report`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = snapshots)]
pub struct Snapshot {
    pub host_id: String,
    pub snapshot_id: String,
    pub short_id: String,
    pub time: i64,
    pub hostname: String,
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub paths: Vec<String>,
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub tags: Vec<String>,
    pub size_bytes: Option<i64>,
    pub file_count: Option<i64>,
    /// When the report that listed it arrived.
    pub reported_at: i64,
}

/// One snapshot of a report (host and report time are given alongside).
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    pub snapshot_id: String,
    pub short_id: String,
    pub time: i64,
    pub hostname: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub size_bytes: Option<i64>,
    pub file_count: Option<i64>,
}

/// One `repo.stats` sample.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = repo_stats)]
pub struct RepoStats {
    pub id: String,
    pub host_id: String,
    pub recorded_at: i64,
    pub size_bytes: Option<i64>,
    pub snapshot_count: Option<i64>,
    pub dedup_ratio: Option<f64>,
    pub last_check_at: Option<i64>,
    pub last_check_status: Option<String>,
    /// `locked` or `unlocked`.
    pub lock_state: Option<String>,
}

/// A `repo.stats` sample to store (same shape as the row).
pub type NewRepoStats = RepoStats;

/// A schedule time that passed without a fire.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = missed_runs)]
pub struct MissedRun {
    pub id: String,
    pub host_id: String,
    pub schedule_id: String,
    pub scheduled_at: i64,
    pub detected_at: i64,
}

/// A missed run to record (same shape as the row).
pub type NewMissedRun = MissedRun;

/// One audit record: who did what, when, from where.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: String,
    pub at: i64,
    /// Username, `agent:<host id>`, or `system`.
    pub actor: String,
    /// Dotted verb, e.g. `host.revoke`, `login.failed`.
    pub action: String,
    pub target: Option<String>,
    /// Details (a JSON object; never a secret).
    #[diesel(
        deserialize_as = Json<Option<Value>>,
        serialize_as = Json<Option<Value>>
    )]
    pub detail: Option<Value>,
    pub source_addr: Option<String>,
}

/// An audit record to write (same shape as the row).
pub type NewAuditEntry = AuditEntry;
