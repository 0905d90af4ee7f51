//! Restore jobs (issue 11 §2), server side: the checks a restore request
//! passes inside the writer transaction that inserts it
//! ([`restore_job`]), and the audit detail it leaves.
//!
//! The snapshot must be one the server knows for the source host (the
//! host itself unless `source_host_id` names another): its full id or its
//! short id exactly as `GET /hosts/{id}/snapshots` shows them; a prefix is
//! not accepted (the store would have to prove it unambiguous, and a
//! short id is the prefix users copy). The job stores the full id and the
//! parameters as a [`protocol::RestoreSpec`] without repository settings:
//! the source repository's secrets are opened and added only when the
//! session sends the job (`host_session::jobs`).

use serde_json::{json, Value};

use super::ActorError;
use crate::ids::HostId;
use crate::protocol;
use crate::store::{self, models, JobKind, JobTrigger};

/// A restore as the REST API received it (fields already typed; their
/// content is checked here).
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// Full or short snapshot id.
    pub snapshot_id: String,
    /// The host whose repository holds the snapshot (`None`: the host
    /// that runs the restore).
    pub source_host_id: Option<String>,
    /// Paths inside the snapshot (empty: all of it).
    pub paths: Vec<String>,
    /// Absolute target folder (`/`: in place).
    pub target: String,
    /// What to do with existing files.
    pub overwrite: protocol::RestoreOverwrite,
    /// `--verify`.
    pub verify: bool,
}

/// Checks a restore of `host_id` and builds its job. Run inside the
/// transaction that inserts it, after the host itself was found.
pub(super) fn restore_job(
    conn: &mut store::DbConnection,
    host_id: &str,
    req: &RestoreRequest,
    now: i64,
) -> Result<models::NewJob, ActorError> {
    let source_host_id = req
        .source_host_id
        .as_deref()
        .filter(|source| *source != host_id);
    let spec = protocol::RestoreSpec {
        paths: req.paths.clone(),
        target: req.target.clone(),
        overwrite: req.overwrite,
        verify: req.verify,
        source_host_id: source_host_id.map(str::to_owned),
        repository: None,
    };
    spec.validate()
        .map_err(|e| ActorError::Invalid(e.to_string()))?;
    let wanted = req.snapshot_id.trim();
    if wanted.is_empty() {
        return Err(ActorError::Invalid(
            "snapshot_id: required for a restore job".to_owned(),
        ));
    }
    let source = source_host_id.unwrap_or(host_id);
    if let Some(source) = source_host_id {
        match store::hosts::get(conn, source)? {
            Some(host) if host.revoked_at.is_none() => {}
            _ => return Err(ActorError::NotFound(format!("source host {source}"))),
        }
        if store::repositories::get_for_host(conn, source)?.is_none() {
            return Err(ActorError::Invalid(format!(
                "source_host_id: host {source} has no repository configured"
            )));
        }
    }
    let found = store::snapshots::matching_for_host(conn, &HostId::from(source), wanted)?;
    let snapshot = match found.as_slice() {
        [one] => one,
        [] => {
            return Err(ActorError::NotFound(format!(
                "snapshot {:?} of host {source}",
                clip(wanted)
            )))
        }
        _ => {
            return Err(ActorError::Invalid(format!(
                "snapshot_id: {wanted:?} is the short id of several snapshots; give the full id"
            )))
        }
    };
    let mut job = models::NewJob::new(
        store::new_id(),
        host_id.to_owned(),
        JobKind::Restore,
        JobTrigger::Manual,
        now,
    );
    job.snapshot_id = Some(snapshot.snapshot_id.clone());
    job.params = Some(store::job_params::JobParams::Restore(spec));
    Ok(job)
}

/// The audit detail of a restore: host, snapshot, source, paths, target.
pub(super) fn audit_detail(host_id: &str, job: &models::NewJob, req: &RestoreRequest) -> Value {
    json!({
        "host_id": host_id,
        "kind": "restore",
        "snapshot_id": job.snapshot_id,
        "source_host_id": req.source_host_id.as_deref().unwrap_or(host_id),
        "paths": req.paths,
        "target": req.target,
        "overwrite": req.overwrite,
        "verify": req.verify,
    })
}

/// At most 100 characters of what the client sent, for an error message.
fn clip(text: &str) -> String {
    text.chars().take(100).collect()
}
