//! The report commands after a successful backup or forget (and at least
//! every `report_interval_seconds`): `restic snapshots`, `restic stats`
//! (raw data; restore size at most once a day, [`RESTORE_SIZE_INTERVAL`]:
//! it reads every snapshot's tree and is the costly one) and `restic list
//! locks`, turned into the `snapshots.report` and `repo.stats` payloads.
//! Every command runs with `--no-lock`, so the daemon may drop the
//! collection (killing restic) when a job arrives, and retry it later.
//!
//! `repo.stats.dedup_ratio` is the restore size (the last one measured,
//! at most a day old) over the raw-data size measured now.
//!
//! The daemon runs [`collect_reports`] as its work in flight; a command
//! that fails or prints something unparsable leaves its part out, logged.

use std::time::Duration;

use chrono::Utc;

use super::restic::{self, RepoSettings, ResticHost};
use super::runner;
use crate::protocol::{FinishStatus, RepoStats, SnapshotsReport};

/// Longest a report command (snapshots, stats, list locks) may run.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How old the restore-size figure (`restic stats --mode restore-size`)
/// may get before it is measured again.
pub const RESTORE_SIZE_INTERVAL: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A restore-size figure and when it was measured.
pub type RestoreSize = (chrono::DateTime<Utc>, u64);

/// What the report commands after a backup or forget produced.
pub(super) struct Reports {
    pub(super) snapshots: Option<SnapshotsReport>,
    pub(super) stats: Option<RepoStats>,
    /// The restore size in use: measured now, or the one passed in.
    pub(super) restore_size: Option<RestoreSize>,
}

/// Whether the restore size must be measured again at `now`.
pub(super) fn restore_size_due(last: Option<RestoreSize>, now: chrono::DateTime<Utc>) -> bool {
    last.is_none_or(|(at, _)| now - at >= RESTORE_SIZE_INTERVAL || at > now)
}

/// Runs the report commands; `restore_size` is the last measured restore
/// size, measured again only when [`restore_size_due`].
pub(super) async fn collect_reports(
    restic: &ResticHost,
    repo: &RepoSettings,
    last_check: Option<(chrono::DateTime<Utc>, FinishStatus)>,
    restore_size: Option<RestoreSize>,
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
    let now = Utc::now();
    let restore = if restore_size_due(restore_size, now) {
        report_output(restic.stats(repo, "restore-size"))
            .await
            .and_then(|stdout| parse_stats_logged(&stdout))
            .map(|restore| (now, restore.total_size))
            .or(restore_size)
    } else {
        restore_size
    };
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
                restore.map_or(raw.total_size, |(_, size)| size),
                raw.total_size,
            ),
            last_check_at: last_check.map(|(at, _)| at),
            last_check_status: last_check.map(|(_, status)| status.to_string()),
            lock_state: restic::lock_state(&locks),
        }),
        _ => None,
    };
    Reports {
        snapshots,
        stats,
        restore_size: restore,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The restore size is measured when none is known, when the last one
    /// is a day old (or from the future: the clock went back), else reused.
    #[test]
    fn restore_size_is_measured_at_most_daily() {
        let now = Utc::now();
        assert!(restore_size_due(None, now));
        assert!(!restore_size_due(
            Some((now - chrono::TimeDelta::hours(23), 1)),
            now
        ));
        assert!(restore_size_due(
            Some((now - RESTORE_SIZE_INTERVAL, 1)),
            now
        ));
        assert!(restore_size_due(
            Some((now + chrono::TimeDelta::hours(1), 1)),
            now
        ));
    }
}
