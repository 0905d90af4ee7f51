//! The host page's verification section (issue 11 §4): the newest restore
//! drill ("Last verified restore: <time>, N files, M MiB, OK", or its
//! failure, or a hint to run one) and how much of the repository's data
//! the last rotating checks read ("Data read by check: k of n subsets in
//! the last n runs"). Operators get a "Run drill now" button.

use maud::{html, Markup};
use serde_json::Value;

use super::{job_button, Data, NEEDS_REPOSITORY};
use crate::http::ui::layout::badge;
use crate::http::ui::{format, PageCtx};
use crate::protocol::{DRILL_BYTES_STAT, DRILL_FILES_STAT, DRILL_MISMATCHES_STAT};
use crate::store::models::Job;
use crate::store::verification::{self, Coverage};
use crate::store::{DbConnection, JobStatus};

/// What the section shows, read with the rest of the page.
pub(super) struct Verification {
    /// The newest drill that succeeded or failed.
    pub drill: Option<Job>,
    /// The host's check coverage.
    pub coverage: Coverage,
}

/// Reads the newest drill and the check coverage of `host_id`, whose
/// rotation `n` was read with its row (`None`: no rotating check yet).
pub(super) fn load(
    conn: &mut DbConnection,
    host_id: &str,
    check_subsets: Option<i64>,
) -> diesel::QueryResult<Verification> {
    let coverage = verification::host_check_coverage_of(conn, host_id, check_subsets)?;
    Ok(Verification {
        drill: verification::latest_drill(conn, host_id)?,
        coverage,
    })
}

/// A whole-number stat of the drill, 0 when missing.
fn stat(job: &Job, name: &str) -> u64 {
    job.stats
        .as_ref()
        .and_then(|s| s.get(name))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Bytes as MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn drill_line(ctx: &PageCtx, job: &Job) -> Markup {
    let at = job.finished_at.unwrap_or(job.created_at);
    let files = stat(job, DRILL_FILES_STAT);
    let bytes = stat(job, DRILL_BYTES_STAT);
    let mismatches = stat(job, DRILL_MISMATCHES_STAT);
    html! {
        p #last-drill data-status=(job.status.as_str()) {
            "Last verified restore: "
            a href={ "/jobs/" (job.id) } {
                time datetime=(format::rfc3339(at)) title=(format::ago(at, ctx.now)) { (format::time(at)) }
            }
            @if let Some(group) = &job.tag { " (" (group) ")" }
            ", " (format::plural(files, "file", "files")) ", " (mib(bytes)) ", "
            @if job.status == JobStatus::Succeeded {
                (badge("succeeded", "OK"))
            } @else {
                (badge("failed", "failed"))
                @if mismatches > 0 { " " (mismatches) " mismatched" }
                @if let Some(error) = &job.error { ": " span.error { (error) } }
            }
        }
    }
}

/// Why a drill cannot run yet: it restores a sample of a snapshot.
fn drill_blocked(data: &Data) -> Option<&'static str> {
    if data.setup.repository.is_none() {
        Some(NEEDS_REPOSITORY)
    } else if data.history.snapshots.is_empty() {
        Some("A drill restores a sample of the newest snapshot: run a backup first.")
    } else {
        None
    }
}

pub(super) fn verification_section(ctx: &PageCtx, data: &Data) -> Markup {
    let host_id = &data.history.host.host.id;
    let v = &data.verification;
    let c = &v.coverage;
    html! {
        section #verification {
            h2 { "Verification" }
            @match &v.drill {
                Some(job) => (drill_line(ctx, job)),
                None => p.muted #last-drill data-status="none" {
                    "No verified restore yet. "
                    "Run a drill: it restores a sample of the newest snapshot into a temporary folder and compares it with the catalog."
                },
            }
            p #check-coverage data-read=(c.read) data-subsets=(c.subsets) {
                @if c.subsets > 0 {
                    "Data read by check: " (c.read) " of " (format::plural(c.subsets, "subset", "subsets")) " in the last " (format::plural(c.subsets, "run", "runs"))
                } @else {
                    "Data read by check: no check run yet (each check reads the next of "
                    (verification::DEFAULT_CHECK_SUBSETS) " subsets)"
                }
            }
            @if ctx.can_operate() {
                div.actions {
                    (job_button(host_id, "drill", None, "Run drill now", drill_blocked(data)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mib_one_decimal() {
        assert_eq!(mib(0), "0.0 MiB");
        assert_eq!(mib(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }
}
