//! Restore drill jobs (issue 11 §4), server side: the options a drill
//! takes ([`DrillOptions`], checked with 400s naming the field), and the
//! job built inside the writer transaction that inserts it
//! ([`drill_job`]): the newest complete catalog of the source group, a
//! rotating sample of its files (`store::drills`), the rotation moved in
//! the same transaction.

use serde_json::{json, Value};

use super::ActorError;
use crate::protocol::DrillSpec;
use crate::store::job_params::JobParams;
use crate::store::{self, drills, models, JobKind, JobTrigger};

/// `drill_sample_files` and `drill_sample_bytes` as given (run-now body or
/// schedule); `None` takes the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrillOptions {
    /// At most this many files (1 to 10,000; default 100).
    pub sample_files: Option<i64>,
    /// At most this many bytes (at least 1; default 256 MiB).
    pub sample_bytes: Option<i64>,
}

impl DrillOptions {
    /// The limits to sample with, or a 400 naming the bad field.
    pub fn resolve(&self) -> Result<(u64, u64), ActorError> {
        let files = match self.sample_files {
            None => drills::DEFAULT_SAMPLE_FILES,
            Some(n) => u64::try_from(n)
                .ok()
                .filter(|n| (1..=drills::MAX_SAMPLE_FILES).contains(n))
                .ok_or_else(|| {
                    ActorError::Invalid(format!(
                        "drill_sample_files: must be between 1 and {}, got {n}",
                        drills::MAX_SAMPLE_FILES
                    ))
                })?,
        };
        let bytes = match self.sample_bytes {
            None => drills::DEFAULT_SAMPLE_BYTES,
            Some(n) => u64::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
                ActorError::Invalid(format!("drill_sample_bytes: must be at least 1, got {n}"))
            })?,
        };
        Ok((files, bytes))
    }
}

/// Builds a drill of `host_id` (the host was found already) of the
/// source group drilled least recently among `groups` (every group of the
/// host when empty) that have a complete catalog. 409 when there is no
/// catalog to drill yet.
pub(super) fn drill_job(
    conn: &mut store::DbConnection,
    host_id: &str,
    groups: &[String],
    options: &DrillOptions,
    trigger: JobTrigger,
    now: i64,
) -> Result<models::NewJob, ActorError> {
    let (max_files, max_bytes) = options.resolve()?;
    let catalogs = drills::newest_catalogs(conn, host_id)?;
    let mut least_recent = None;
    for catalog in &catalogs {
        if !groups.is_empty() && !groups.contains(&catalog.source_group) {
            continue;
        }
        let (_, drilled_at) = drills::offset(conn, host_id, &catalog.source_group)?;
        if least_recent.is_none_or(|(at, _)| drilled_at < at) {
            least_recent = Some((drilled_at, catalog));
        }
    }
    let catalog = least_recent.map(|(_, c)| c).ok_or_else(|| {
        let which = match groups {
            [] => format!("host {host_id} has no catalogued snapshot yet"),
            [name] => {
                format!("source_group {name:?} of host {host_id} has no catalogued snapshot yet")
            }
            names => format!(
                "none of the source groups {} of host {host_id} has a catalogued snapshot yet",
                names.join(", ")
            ),
        };
        ActorError::Conflict(format!(
            "{which}; a drill needs the catalog (it is made after each backup)"
        ))
    })?;
    let sample = drills::pick(conn, catalog, max_files, max_bytes)?;
    if sample.files.is_empty() {
        return Err(ActorError::Conflict(format!(
            "snapshot {} has no file of at most {max_bytes} bytes to drill",
            sample.snapshot_id
        )));
    }
    drills::set_offset(conn, host_id, &sample.source_group, sample.next_offset, now)?;
    let spec = DrillSpec {
        files: sample.files,
    };
    let mut job = models::NewJob::new(
        store::new_id(),
        host_id.to_owned(),
        JobKind::Drill,
        trigger,
        now,
    );
    job.snapshot_id = Some(sample.snapshot_id);
    job.tag = Some(sample.source_group);
    job.params = Some(JobParams::Drill(spec));
    Ok(job)
}

/// The audit detail of a drill: host, snapshot, group, sample size.
pub(super) fn audit_detail(host_id: &str, job: &models::NewJob) -> Value {
    let files = job
        .params
        .as_ref()
        .and_then(JobParams::drill)
        .map_or(0, |spec| spec.files.len());
    json!({
        "host_id": host_id,
        "kind": "drill",
        "snapshot_id": job.snapshot_id,
        "source_group": job.tag,
        "files": files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defaults apply; zero, negative and too-large values name the field.
    #[test]
    fn options_are_checked() {
        assert_eq!(
            DrillOptions::default().resolve().unwrap(),
            (100, 256 * 1024 * 1024)
        );
        let bad_files = DrillOptions {
            sample_files: Some(0),
            sample_bytes: None,
        };
        let err = bad_files.resolve().unwrap_err().to_string();
        assert!(err.starts_with("drill_sample_files:"), "{err}");
        let too_many = DrillOptions {
            sample_files: Some(10_001),
            sample_bytes: None,
        };
        assert!(too_many.resolve().is_err());
        let bad_bytes = DrillOptions {
            sample_files: Some(5),
            sample_bytes: Some(-1),
        };
        let err = bad_bytes.resolve().unwrap_err().to_string();
        assert!(err.starts_with("drill_sample_bytes:"), "{err}");
    }
}
