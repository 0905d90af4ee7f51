//! Work on many hosts at once (issue 12 §4 and the pushes of §1):
//! [`Actors::create_jobs_bulk`] and [`Actors::cancel_jobs_bulk`] each run
//! in ONE writer transaction with ONE audit row naming the selection and
//! the count, then hand the jobs (or the stops) to the live sessions;
//! [`Actors::push_configs`] sends the current `schedule.set` to the live
//! sessions of hosts whose effective configuration changed, in the
//! background, a chunk of hosts per blocking read.

use std::collections::BTreeMap;

use serde::Serialize;

use super::events::{Event, Publish};
use super::host_session::{self, CancelJob, PushConfig};
use super::persistence::CANCELLED_BY_OPERATOR;
use super::{blocking_read, hand_to_session, run_now_job, ActorError, Actors, NewJobRequest};
use crate::protocol::JobKind;
use crate::store::{self, channel, policies::Selector, policy_sync, JobStatus};

/// Hosts whose configuration one blocking read loads for [`Actors::push_configs`].
const PUSH_CHUNK: usize = 64;

/// Most hosts one bulk request may name.
pub const MAX_BULK_HOSTS: usize = 100_000;

/// Which hosts a bulk action applies to.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every non-revoked host whose labels match.
    Selector(Selector),
    /// These hosts (unknown or revoked ones are skipped, with the reason).
    HostIds(Vec<String>),
}

impl Selection {
    /// How the audit row names it.
    fn describe(&self) -> serde_json::Value {
        match self {
            Selection::Selector(s) => serde_json::json!({ "selector": s }),
            Selection::HostIds(ids) => serde_json::json!({ "host_ids": ids }),
        }
    }

    /// The hosts to act on, and the named ones that cannot be acted on.
    fn resolve(
        &self,
        conn: &mut store::DbConnection,
    ) -> diesel::QueryResult<(Vec<String>, Vec<Skipped>)> {
        match self {
            Selection::Selector(s) => Ok((policy_sync::matching_hosts(conn, s)?, Vec::new())),
            Selection::HostIds(ids) => {
                let mut live = Vec::new();
                let mut skipped = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for id in ids {
                    if !seen.insert(id.as_str()) {
                        continue;
                    }
                    match store::hosts::get(conn, id)? {
                        Some(h) if h.revoked_at.is_none() => live.push(id.clone()),
                        _ => skipped.push(Skipped {
                            host_id: id.clone(),
                            reason: "no such host".to_owned(),
                        }),
                    }
                }
                Ok((live, skipped))
            }
        }
    }
}

/// A host a bulk action left out, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Skipped {
    pub host_id: String,
    pub reason: String,
}

/// What a bulk create did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BulkCreated {
    pub created: usize,
    pub skipped: Vec<Skipped>,
}

/// What a bulk cancel did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BulkCancelled {
    /// Jobs cancelled while queued plus running jobs asked to stop.
    pub cancelled: usize,
    /// Of those, queued jobs cancelled at once.
    pub queued_cancelled: usize,
    /// Of those, running jobs whose agent was asked to stop.
    pub stop_requested: usize,
    /// Running jobs of offline hosts (they cannot be stopped now).
    pub skipped: Vec<Skipped>,
}

/// Who asked, for the audit row.
#[derive(Debug, Clone)]
pub struct Requester {
    pub username: String,
    pub source_addr: Option<String>,
}

impl Actors {
    /// Creates a job of `kind` (on `source_group`) for every selected
    /// host, in one write with one `job.bulk_create` audit row; a host
    /// the job cannot be made for (no such group, …) is skipped with the
    /// reason. Then the jobs go to their hosts' live sessions.
    pub async fn create_jobs_bulk(
        &self,
        selection: Selection,
        kind: JobKind,
        source_group: Option<String>,
        who: Requester,
    ) -> Result<BulkCreated, ActorError> {
        let sessions = self.sessions.clone();
        let (jobs, skipped) = self
            .write("creating jobs in bulk", move |conn| {
                let now = store::now_ms();
                let (hosts, mut skipped) = selection.resolve(conn)?;
                let mut jobs = Vec::with_capacity(hosts.len());
                for host_id in hosts {
                    let req = NewJobRequest {
                        host_id: host_id.clone(),
                        kind,
                        source_group: source_group.clone(),
                        requested_by: who.username.clone(),
                        source_addr: who.source_addr.clone(),
                        restore: None,
                        drill: None,
                    };
                    match run_now_job(conn, &sessions, &req, now) {
                        Ok((new, check)) => {
                            if let Some(step) = check {
                                step.write(conn)?;
                            }
                            jobs.push(store::jobs::insert(conn, &new)?);
                        }
                        Err(
                            ActorError::Invalid(reason)
                            | ActorError::NotFound(reason)
                            | ActorError::Conflict(reason),
                        ) => {
                            skipped.push(Skipped { host_id, reason });
                        }
                        Err(ActorError::LacksCapability(lacks)) => {
                            skipped.push(Skipped {
                                host_id,
                                reason: lacks.to_string(),
                            });
                        }
                        Err(e) => return Err(e),
                    }
                }
                let mut detail = selection.describe();
                if let Some(map) = detail.as_object_mut() {
                    map.insert("kind".into(), serde_json::json!(kind));
                    map.insert("source_group".into(), serde_json::json!(source_group));
                    map.insert("created".into(), serde_json::json!(jobs.len()));
                    map.insert("skipped".into(), serde_json::json!(skipped.len()));
                }
                store::audit::record(
                    conn,
                    now,
                    &who.username,
                    who.source_addr.as_deref(),
                    "job.bulk_create",
                    None,
                    Some(detail),
                )?;
                Ok::<_, ActorError>((jobs, skipped))
            })
            .await?;
        for job in &jobs {
            hand_to_session(&self.sessions, &self.events, job);
        }
        tracing::info!(
            created = jobs.len(),
            skipped = skipped.len(),
            "jobs created in bulk"
        );
        Ok(BulkCreated {
            created: jobs.len(),
            skipped,
        })
    }

    /// Cancels the queued jobs of every selected host and asks the live
    /// agents to stop their running ones (only of `kind`, if given): one
    /// write with one `job.bulk_cancel` audit row.
    pub async fn cancel_jobs_bulk(
        &self,
        selection: Selection,
        kind: Option<JobKind>,
        who: Requester,
    ) -> Result<BulkCancelled, ActorError> {
        let sessions = self.sessions.clone();
        let (cancelled, running, skipped) = self
            .write("cancelling jobs in bulk", move |conn| {
                let now = store::now_ms();
                let (hosts, _) = selection.resolve(conn)?;
                let active = store::jobs::active_for_hosts(conn, &hosts, kind)?;
                let mut cancelled = Vec::new();
                let mut running = Vec::new();
                let mut skipped = Vec::new();
                for job in active {
                    if job.status == JobStatus::Queued {
                        if let Some(job) =
                            channel::cancel_if_queued(conn, &job.id, CANCELLED_BY_OPERATOR, now)?
                        {
                            cancelled.push(job);
                        }
                    } else if sessions.get(&job.host_id).is_some() {
                        running.push(job);
                    } else {
                        skipped.push(Skipped {
                            host_id: job.host_id.to_string(),
                            reason: format!(
                                "host is offline; running job {} cannot be stopped until it reconnects",
                                job.id
                            ),
                        });
                    }
                }
                let mut detail = selection.describe();
                if let Some(map) = detail.as_object_mut() {
                    map.insert("kind".into(), serde_json::json!(kind));
                    map.insert(
                        "cancelled".into(),
                        serde_json::json!(cancelled.len() + running.len()),
                    );
                }
                store::audit::record(
                    conn,
                    now,
                    &who.username,
                    who.source_addr.as_deref(),
                    "job.bulk_cancel",
                    None,
                    Some(detail),
                )?;
                Ok::<_, ActorError>((cancelled, running, skipped))
            })
            .await?;
        for job in &cancelled {
            self.events.do_send(Publish(Event::JobStatus {
                host_id: job.host_id.clone(),
                job_id: job.id.clone(),
                status: job.status,
                message: job.error.clone(),
            }));
            if let Some(session) = self.sessions.get(&job.host_id) {
                session.do_send(CancelJob {
                    job_id: job.id.to_string(),
                    already_cancelled: true,
                });
            }
        }
        for job in &running {
            if let Some(session) = self.sessions.get(&job.host_id) {
                session.do_send(CancelJob {
                    job_id: job.id.to_string(),
                    already_cancelled: false,
                });
            }
        }
        Ok(BulkCancelled {
            cancelled: cancelled.len() + running.len(),
            queued_cancelled: cancelled.len(),
            stop_requested: running.len(),
            skipped,
        })
    }

    /// Sends the current `schedule.set` to the live sessions of the hosts
    /// a policy or label change reached, and `config.update` before it to
    /// those whose repository changed (only those: the others' secrets
    /// are not even opened), in the background (after the change's own
    /// write): a chunk of hosts per blocking read, so 10,000 hosts are
    /// ~160 reads, not 10,000.
    pub fn push_configs(&self, changed: policy_sync::Applied) {
        let repositories: std::collections::HashSet<String> =
            changed.repositories.into_iter().collect();
        let mut all: Vec<String> = changed.schedules;
        all.extend(repositories.iter().cloned());
        all.sort_unstable();
        all.dedup();
        let online: Vec<(String, bool)> = all
            .into_iter()
            .filter(|h| self.sessions.get(h).is_some())
            .map(|h| {
                let repository = repositories.contains(&h);
                (h, repository)
            })
            .collect();
        if online.is_empty() {
            return;
        }
        let actors = self.clone();
        actix::spawn(async move {
            for chunk in online.chunks(PUSH_CHUNK) {
                let ids = chunk.to_vec();
                let key = actors.key.clone();
                let loaded = blocking_read(&actors.pool, move |conn| {
                    let mut configs = BTreeMap::new();
                    for (id, repository) in ids {
                        let config = if repository {
                            host_session::load_config(conn, &key, &id)?
                        } else {
                            host_session::load_schedules(conn, &id)?
                        };
                        configs.insert(id, config);
                    }
                    Ok(configs)
                })
                .await;
                match loaded {
                    Ok(configs) => {
                        for (id, config) in configs {
                            if let Some(session) = actors.sessions.get(&id) {
                                session.do_send(PushConfig(config));
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot load configurations to push");
                    }
                }
            }
        });
    }
}
