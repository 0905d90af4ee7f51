//! The server's actors (DESIGN.md "The actor model") and [`Actors`], the
//! facade the HTTP layer uses to reach them.
//!
//! PLACEHOLDER: this file holds the facade's signatures with a direct-to-
//! database body so the REST API can be built and tested while the actors
//! are written; the actors replace the bodies (jobs reach live sessions,
//! config pushes go out over the WebSocket).

use std::sync::Arc;

use crate::config::ServerConfig;
use crate::crypto::SecretKey;
use crate::protocol;
use crate::store::{self, models, JobTrigger, Pool};

/// Handles to the server's actors, built once in the app wiring.
#[derive(Clone)]
pub struct Actors {
    pool: Pool,
}

/// Starts every actor; call once, inside the actix system.
pub fn start(pool: Pool, _key: Arc<SecretKey>, _config: Arc<ServerConfig>) -> Actors {
    Actors { pool }
}

/// A run-now (or other manual) job to create.
pub struct NewJobRequest {
    pub host_id: String,
    pub kind: protocol::JobKind,
    /// Source group name; required for backup.
    pub source_group: Option<String>,
    /// Username (or `agent:<id>`) for the audit trail.
    pub requested_by: String,
}

/// Why an actor request failed.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    CancelledQueued,
    CancelRequested,
    AlreadyFinished,
}

impl Actors {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut store::DbConnection) -> Result<T, ActorError> + Send + 'static,
    ) -> Result<T, ActorError> {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool
                .get()
                .map_err(|e| ActorError::Internal(e.to_string()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| ActorError::Internal(e.to_string()))?
    }

    /// Writes a queued job row and hands it to the host's live session.
    pub async fn create_job(&self, req: NewJobRequest) -> Result<models::Job, ActorError> {
        self.blocking(move |conn| {
            let db = |e: diesel::result::Error| ActorError::Internal(e.to_string());
            if store::hosts::get(conn, &req.host_id).map_err(db)?.is_none() {
                return Err(ActorError::NotFound(format!("host {}", req.host_id)));
            }
            let mut new = models::NewJob::new(
                store::new_id(),
                req.host_id.clone(),
                req.kind.into(),
                JobTrigger::Manual,
                store::now_ms(),
            );
            if let Some(name) = &req.source_group {
                let group = store::source_groups::by_name(conn, &req.host_id, name)
                    .map_err(db)?
                    .ok_or_else(|| ActorError::NotFound(format!("source group {name}")))?;
                new.source_group_id = Some(group.id);
                new.tag = Some(group.name);
                new.includes = group.includes;
                new.excludes = group.excludes;
                new.retention_policy = group.retention_policy;
            } else if req.kind == protocol::JobKind::Backup {
                return Err(ActorError::Invalid(
                    "source_group is required for a backup".into(),
                ));
            }
            store::jobs::insert(conn, &new).map_err(db)
        })
        .await
    }

    /// Cancels a queued job directly, or asks the agent to stop a running one.
    pub async fn cancel_job(&self, job_id: &str) -> Result<CancelOutcome, ActorError> {
        let job_id = job_id.to_string();
        self.blocking(move |conn| {
            let db = |e: diesel::result::Error| ActorError::Internal(e.to_string());
            let job = store::jobs::get(conn, &job_id)
                .map_err(db)?
                .ok_or_else(|| ActorError::NotFound(format!("job {job_id}")))?;
            if job.status.is_terminal() {
                return Ok(CancelOutcome::AlreadyFinished);
            }
            store::jobs::finish(
                conn,
                &job_id,
                &models::JobFinish {
                    status: store::JobStatus::Cancelled,
                    finished_at: store::now_ms(),
                    exit_code: None,
                    error: Some("cancelled by an operator".into()),
                    warning: None,
                    stats: None,
                },
            )
            .map_err(db)?;
            Ok(CancelOutcome::CancelledQueued)
        })
        .await
    }

    /// After a change to a host's repository, groups or schedules: bumps
    /// the schedule version (and pushes to the live session).
    pub async fn host_config_changed(&self, host_id: &str) -> Result<(), ActorError> {
        let host_id = host_id.to_string();
        self.blocking(move |conn| {
            store::schedule_versions::bump(conn, &host_id)
                .map(|_| ())
                .map_err(|e| ActorError::Internal(e.to_string()))
        })
        .await
    }

    /// Revokes a host: its token stops working (and its session closes).
    pub async fn revoke_host(&self, host_id: &str) -> Result<(), ActorError> {
        let host_id = host_id.to_string();
        self.blocking(move |conn| {
            let revoked = store::hosts::revoke(conn, &host_id, store::now_ms())
                .map_err(|e| ActorError::Internal(e.to_string()))?;
            if revoked {
                Ok(())
            } else {
                Err(ActorError::NotFound(format!("host {host_id}")))
            }
        })
        .await
    }
}
