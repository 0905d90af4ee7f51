//! The report commands after a successful backup or forget: `restic
//! snapshots`, `restic stats` (raw data and restore size) and `restic list
//! locks`, turned into the `snapshots.report` and `repo.stats` payloads.
//! The daemon runs [`collect_reports`] as its work in flight; a command
//! that fails or prints something unparsable leaves its part out, logged.

use std::time::Duration;

use chrono::Utc;

use super::restic::{self, RepoSettings, ResticHost};
use super::runner;
use crate::protocol::{FinishStatus, RepoStats, SnapshotsReport};

/// Longest a report command (snapshots, stats, list locks) may run.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// What the report commands after a backup or forget produced.
pub(super) struct Reports {
    pub(super) snapshots: Option<SnapshotsReport>,
    pub(super) stats: Option<RepoStats>,
}

/// Runs the report commands after a successful backup or forget.
pub(super) async fn collect_reports(
    restic: &ResticHost,
    repo: &RepoSettings,
    last_check: Option<(chrono::DateTime<Utc>, FinishStatus)>,
) -> Reports {
    let snapshots = match report_output(restic.snapshots(repo)).await {
        Some(stdout) => match restic::parse_snapshots(&stdout) {
            Ok(snapshots) => Some(SnapshotsReport { snapshots }),
            Err(err) => {
                tracing::warn!("cannot parse `restic snapshots`: {err}");
                None
            }
        },
        None => None,
    };
    let raw = report_output(restic.stats(repo, "raw-data"))
        .await
        .and_then(|stdout| parse_stats_logged(&stdout));
    let restore = report_output(restic.stats(repo, "restore-size"))
        .await
        .and_then(|stdout| parse_stats_logged(&stdout));
    let locks = report_output(restic.list_locks(repo)).await;
    let stats = match (raw, locks) {
        (Some(raw), Some(locks)) => Some(RepoStats {
            size_bytes: raw.total_size,
            snapshot_count: raw
                .snapshots_count
                .or_else(|| {
                    snapshots
                        .as_ref()
                        .map(|report| report.snapshots.len() as u64)
                })
                .unwrap_or(0),
            dedup_ratio: restic::dedup_ratio(
                restore.as_ref().map_or(raw.total_size, |r| r.total_size),
                raw.total_size,
            ),
            last_check_at: last_check.map(|(at, _)| at),
            last_check_status: last_check.map(|(_, status)| status.to_string()),
            lock_state: restic::lock_state(&locks),
        }),
        _ => None,
    };
    Reports { snapshots, stats }
}

async fn report_output(
    invocation: Result<restic::Invocation, restic::BuildError>,
) -> Option<String> {
    let invocation = match invocation {
        Ok(invocation) => invocation,
        Err(err) => {
            tracing::warn!("report skipped: {err}");
            return None;
        }
    };
    match runner::capture(&invocation, REPORT_TIMEOUT).await {
        Ok(output) => Some(output.stdout),
        Err(err) => {
            tracing::warn!(args = ?invocation.args, "report command failed: {err}");
            None
        }
    }
}

fn parse_stats_logged(stdout: &str) -> Option<restic::RepoStatsOutput> {
    restic::parse_stats(stdout)
        .map_err(|err| tracing::warn!("cannot parse `restic stats`: {err}"))
        .ok()
}
