//! Jobs: `POST /hosts/{id}/jobs` (run now, through `Actors::create_job`:
//! checked, inserted and audited in one write, then sent),
//! `GET /jobs` (`?host_id=&status=&kind=&since=&limit=&offset=`, newest
//! first), `GET /jobs/{id}`, `GET /jobs/{id}/logs` (`?after_seq=&limit=`)
//! and `POST /jobs/{id}/cancel` (through `Actors::cancel_job`). Running and
//! cancelling need the operator role and are audited.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures_util::future;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::table::Endpoint;
use super::{audit, List, PageQuery, DEFAULT_LIMIT};
use crate::actors::drill::DrillOptions;
use crate::actors::restore::RestoreRequest;
use crate::actors::{CancelOutcome, NewJobRequest};
use crate::auth::Role;
use crate::http::auth::{Principal, Reader};
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{int_param, parse_time, Body, Time};
use crate::http::AppState;
use crate::protocol::{self, RetentionPolicy};
use crate::store::job_params::JobParams;
use crate::store::{self, models, JobKind, JobStatus, LogStream};

/// Log lines per page when the request gives no `limit`.
const DEFAULT_LOG_LIMIT: i64 = 1000;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::post("/hosts/{id}/jobs", |r| r.to(create))
            .summary("Run a job now (queued; sent when the host is online)")
            .describe(
                "source_group is required for backup and forget, refused for the others. \
                 A restore takes snapshot_id (full or short id as the snapshots list shows it), \
                 target (absolute; \"/\" restores in place), and optionally source_host_id \
                 (another host whose repository holds the snapshot), paths (absolute paths \
                 inside the snapshot; none = all of it), overwrite and verify. \
                 A drill takes source_group (optional: default the group drilled least recently), \
                 drill_sample_files and drill_sample_bytes; it needs a catalogued snapshot (409 \
                 without one).",
            )
            .role(Role::Operator)
            .body("JobCreate")
            .ok(201, "Job"),
        Endpoint::get("/jobs", |r| r.to(list))
            .summary("List jobs, newest first")
            .role(Role::Viewer)
            .query("host_id", "string", "Only this host's jobs.")
            .query_enum(
                "status",
                JobStatus::ALL.iter().map(|s| s.as_str()).collect(),
                "Only jobs in this status.",
            )
            .query_enum(
                "kind",
                JobKind::ALL.iter().map(|k| k.as_str()).collect(),
                "Only jobs of this kind.",
            )
            .query_time("since", "Only jobs created at or after this time.")
            .paged()
            .ok(200, "JobList"),
        Endpoint::get("/jobs/{id}", |r| r.to(get))
            .summary("Read a job: status, attempt, timings, progress, stats, error")
            .role(Role::Viewer)
            .ok(200, "Job"),
        Endpoint::get("/jobs/{id}/logs", |r| r.to(logs))
            .summary("A job's log lines after a sequence number, in order")
            .role(Role::Viewer)
            .query(
                "after_seq",
                "integer",
                "Only lines with a greater seq (default 0).",
            )
            .query(
                "limit",
                "integer",
                "Lines per page, 1 to 10000 (default 1000).",
            )
            .ok(200, "LogPage"),
        Endpoint::post("/jobs/{id}/cancel", |r| r.to(cancel))
            .summary("Cancel a job: a queued one at once, a running one through its agent")
            .role(Role::Operator)
            .ok(202, "CancelResult")
            .error(
                409,
                "The job has finished, or its host is offline while it runs.",
            ),
    ]
}

/// A job as the API shows it: status, attempt, timings, progress, stats
/// and error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Job)]
pub(super) struct JobDto {
    id: String,
    host_id: String,
    #[schema(schema_with = super::openapi::job_kind)]
    kind: JobKind,
    #[schema(schema_with = super::openapi::job_status)]
    status: JobStatus,
    #[schema(schema_with = super::openapi::job_trigger)]
    trigger: store::JobTrigger,
    /// Who created the job: `agent` for a backup the agent ran on its own
    /// while the server was unreachable, else `server`.
    #[schema(value_type = String)]
    origin: &'static str,
    source_group_id: Option<String>,
    /// The restic tag (the source group's name for backup and forget).
    tag: Option<String>,
    includes: Vec<String>,
    excludes: Vec<String>,
    retention_policy: Option<RetentionPolicy>,
    schedule_id: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    scheduled_at: Option<Time>,
    attempt: i32,
    first_attempt_id: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    retry_at: Option<Time>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Time,
    #[schema(value_type = Option<String>, format = DateTime)]
    dispatched_at: Option<Time>,
    #[schema(value_type = Option<String>, format = DateTime)]
    accepted_at: Option<Time>,
    #[schema(value_type = Option<String>, format = DateTime)]
    started_at: Option<Time>,
    #[schema(value_type = Option<String>, format = DateTime)]
    finished_at: Option<Time>,
    exit_code: Option<i32>,
    error: Option<String>,
    warning: Option<String>,
    /// The latest `job.progress` payload.
    #[schema(value_type = Option<Object>)]
    progress: Option<protocol::JobProgress>,
    /// restic's summary of the finished run.
    #[schema(value_type = Option<Object>)]
    stats: Option<Value>,
    /// The highest log line number stored (0: none).
    last_log_seq: i64,
    /// Restore (and catalog): the snapshot read, by its full id.
    snapshot_id: Option<String>,
    /// The kind's own parameters (restore: paths, target, overwrite,
    /// verify, source_host_id; drill: the sampled files and their sizes).
    #[schema(value_type = Option<Object>)]
    params: Option<JobParams>,
    /// A queued job on a shared repository that waits for its lease:
    /// why, naming the job it waits for (null otherwise).
    waiting_for: Option<String>,
}

impl JobDto {
    fn from_row(j: models::Job) -> Self {
        JobDto {
            includes: j.includes,
            excludes: j.excludes,
            retention_policy: j.retention_policy,
            progress: j.progress,
            stats: j.stats,
            params: j.params,
            snapshot_id: j.snapshot_id,
            id: j.id.into(),
            host_id: j.host_id.into(),
            kind: j.kind,
            status: j.status,
            origin: if j.trigger == store::JobTrigger::Agent {
                protocol::ORIGIN_AGENT
            } else {
                "server"
            },
            trigger: j.trigger,
            source_group_id: j.source_group_id.map(String::from),
            tag: j.tag,
            schedule_id: j.schedule_id.map(String::from),
            scheduled_at: Time::opt(j.scheduled_at),
            attempt: j.attempt,
            first_attempt_id: j.first_attempt_id.map(String::from),
            retry_at: Time::opt(j.retry_at),
            created_at: Time(j.created_at),
            dispatched_at: Time::opt(j.dispatched_at),
            accepted_at: Time::opt(j.accepted_at),
            started_at: Time::opt(j.started_at),
            finished_at: Time::opt(j.finished_at),
            exit_code: j.exit_code,
            error: j.error,
            warning: j.warning,
            last_log_seq: j.last_log_seq,
            waiting_for: None,
        }
    }

    /// Adds `waiting_for` to the queued jobs of `dtos` that wait for a
    /// repository lease.
    fn with_waiting(
        conn: &mut store::DbConnection,
        mut dtos: Vec<JobDto>,
    ) -> Result<Vec<JobDto>, ApiError> {
        let queued: Vec<&str> = dtos
            .iter()
            .filter(|j| j.status == JobStatus::Queued)
            .map(|j| j.id.as_str())
            .collect();
        let waiting = store::leases::waiting_for(conn, &queued)?;
        for dto in &mut dtos {
            dto.waiting_for = waiting
                .iter()
                .find(|(job, _)| *job == dto.id)
                .map(|(_, reason)| reason.clone());
        }
        Ok(dtos)
    }
}

/// `POST /hosts/{id}/jobs` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = JobCreate)]
pub(super) struct CreateRequest {
    #[schema(schema_with = super::openapi::job_kind)]
    kind: String,
    /// Group name; required for backup and forget.
    source_group: Option<String>,
    /// Restore: the snapshot, its full id or its short id.
    snapshot_id: Option<String>,
    /// Restore: the host whose repository holds the snapshot (default:
    /// this host).
    source_host_id: Option<String>,
    /// Restore: absolute paths inside the snapshot (empty or absent: all).
    paths: Option<Vec<String>>,
    /// Restore: the absolute folder restored into; "/" restores in place.
    target: Option<String>,
    /// Restore: what to do with existing files (default "always").
    #[schema(schema_with = super::openapi::restore_overwrite)]
    overwrite: Option<String>,
    /// Restore: read the restored files back and compare them.
    verify: Option<bool>,
    /// Drill: at most this many files (1 to 10000; default 100).
    drill_sample_files: Option<i64>,
    /// Drill: at most this many bytes (default 268435456, 256 MiB).
    drill_sample_bytes: Option<i64>,
}

impl CreateRequest {
    /// The restore parameters: required (snapshot and target) for a
    /// restore, refused (400 naming the field) for any other kind.
    fn restore(&mut self, kind: protocol::JobKind) -> Result<Option<RestoreRequest>, ApiError> {
        if kind != protocol::JobKind::Restore {
            let given = [
                ("snapshot_id", self.snapshot_id.is_some()),
                ("source_host_id", self.source_host_id.is_some()),
                ("paths", self.paths.is_some()),
                ("target", self.target.is_some()),
                ("overwrite", self.overwrite.is_some()),
                ("verify", self.verify.is_some()),
            ];
            if let Some((field, _)) = given.iter().find(|(_, given)| *given) {
                return Err(ApiError::validation(format!(
                    "{field}: only a restore job takes it, not a {kind} job"
                )));
            }
            return Ok(None);
        }
        let required = |value: Option<String>, field: &str| {
            value
                .ok_or_else(|| ApiError::validation(format!("{field}: required for a restore job")))
        };
        let overwrite = match self.overwrite.take() {
            None => protocol::RestoreOverwrite::default(),
            Some(text) => text.parse().map_err(|_| {
                let valid: Vec<&str> = protocol::RestoreOverwrite::ALL
                    .iter()
                    .map(|m| m.as_str())
                    .collect();
                ApiError::validation(format!(
                    "overwrite: unknown overwrite mode {text:?}; expected one of {}",
                    valid.join(", ")
                ))
            })?,
        };
        Ok(Some(RestoreRequest {
            snapshot_id: required(self.snapshot_id.take(), "snapshot_id")?,
            source_host_id: self.source_host_id.take().filter(|id| !id.is_empty()),
            paths: self.paths.take().unwrap_or_default(),
            target: required(self.target.take(), "target")?,
            overwrite,
            verify: self.verify.unwrap_or(false),
        }))
    }
}

impl CreateRequest {
    /// A drill's options; refused (400 naming the field) for other kinds.
    fn drill(&self, kind: protocol::JobKind) -> Result<Option<DrillOptions>, ApiError> {
        let options = DrillOptions {
            sample_files: self.drill_sample_files,
            sample_bytes: self.drill_sample_bytes,
        };
        if kind == protocol::JobKind::Drill {
            options.resolve()?;
            return Ok(Some(options));
        }
        let given = [
            ("drill_sample_files", options.sample_files.is_some()),
            ("drill_sample_bytes", options.sample_bytes.is_some()),
        ];
        match given.iter().find(|(_, given)| *given) {
            Some((field, _)) => Err(ApiError::validation(format!(
                "{field}: only a drill job takes it, not a {kind} job"
            ))),
            None => Ok(None),
        }
    }
}

/// Parses a job kind; the error lists the valid ones.
pub(super) fn parse_kind(text: &str) -> Result<protocol::JobKind, ApiError> {
    text.parse::<protocol::JobKind>().map_err(|_| {
        let valid: Vec<&str> = protocol::JobKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::validation(format!(
            "kind: unknown job kind {text:?}; expected one of {}",
            valid.join(", ")
        ))
    })
}

/// `POST /hosts/{id}/jobs`: one writer call checks the request, inserts
/// the job and its audit row (`Actors::create_job`), then it is sent.
async fn create(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let mut request = body.into_inner();
    let kind = parse_kind(request.kind.trim())?;
    let restore = request.restore(kind)?;
    let drill = request.drill(kind)?;
    let job = state
        .actors
        .create_job(NewJobRequest {
            host_id: path.into_inner(),
            kind,
            source_group: request.source_group,
            requested_by: who.username.clone(),
            source_addr: who.source_addr.clone(),
            restore,
            drill,
        })
        .await?;
    Ok(HttpResponse::Created().json(JobDto::from_row(job)))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    host_id: Option<String>,
    status: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

impl ListQuery {
    fn into_filter(self) -> Result<store::jobs::JobFilter, ApiError> {
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let status = nonempty(self.status)
            .map(|s| {
                s.parse::<JobStatus>().map_err(|_| {
                    let valid: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
                    ApiError::validation(format!(
                        "status: unknown job status {s:?}; expected one of {}",
                        valid.join(", ")
                    ))
                })
            })
            .transpose()?;
        let kind = nonempty(self.kind).map(|k| parse_kind(&k)).transpose()?;
        let since = nonempty(self.since)
            .map(|s| parse_time("since", &s))
            .transpose()?;
        let (limit, offset) = PageQuery {
            limit: self.limit,
            offset: self.offset,
        }
        .resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
        Ok(store::jobs::JobFilter {
            host_id: nonempty(self.host_id),
            status,
            kind,
            since,
            limit,
            offset,
            ..store::jobs::JobFilter::default()
        })
    }
}

async fn list(
    state: web::Data<AppState>,
    reader: Reader,
    query: web::Query<ListQuery>,
) -> Result<web::Json<List<JobDto>>, ApiError> {
    let filter = query.into_inner().into_filter();
    // Read alongside the caller's check (`Reader`), which is answered
    // first, before a bad query's error: viewers and up may.
    let (who, (items, total)) = reader
        .alongside(async move {
            let filter = filter?;
            // A total from the summary rows is read beside the page, on
            // another connection (on PostgreSQL a statement in a row is a
            // round trip); any other is counted after it, when needed.
            let summarised = store::jobs::summarised(&filter);
            let summary = async {
                if !summarised {
                    return Ok(None);
                }
                let filter = filter.clone();
                with_conn(&state.pool, move |conn| {
                    Ok(store::jobs::summary_total(conn, &filter)?)
                })
                .await
            };
            let page = with_conn(&state.pool, {
                let filter = filter.clone();
                move |conn| {
                    let jobs = store::jobs::page(conn, &filter)?;
                    let len = jobs.len();
                    let total = if summarised {
                        None
                    } else {
                        Some(store::jobs::total(conn, &filter, len)?)
                    };
                    let items = jobs.into_iter().map(JobDto::from_row).collect();
                    Ok((JobDto::with_waiting(conn, items)?, len, total))
                }
            });
            let ((items, len, total), summary) = future::try_join(page, summary).await?;
            let total = total.unwrap_or_else(|| {
                store::jobs::known_total(&filter, len).unwrap_or(summary.unwrap_or_default())
            });
            Ok::<_, ApiError>((items, total))
        })
        .await?;
    who.require(Role::Viewer)?;
    Ok(web::Json(List { items, total }))
}

fn load_job(conn: &mut store::DbConnection, id: &str) -> Result<models::Job, ApiError> {
    store::jobs::get(conn, id)?.ok_or_else(|| ApiError::not_found(&format!("job {id}")))
}

async fn get(
    state: web::Data<AppState>,
    reader: Reader,
    path: web::Path<String>,
) -> Result<web::Json<JobDto>, ApiError> {
    let id = path.into_inner();
    // Read alongside the caller's check (`Reader`): viewers and up may.
    let (who, job) = reader
        .alongside(with_conn(&state.pool, move |conn| {
            let job = JobDto::from_row(load_job(conn, &id)?);
            Ok(JobDto::with_waiting(conn, vec![job])?.pop())
        }))
        .await?;
    who.require(Role::Viewer)?;
    let job = job.ok_or_else(|| ApiError::internal("job row vanished"))?;
    Ok(web::Json(job))
}

/// One log line as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = LogLine)]
pub(super) struct LogLineDto {
    seq: i64,
    #[schema(value_type = String, format = DateTime)]
    ts: Time,
    #[schema(schema_with = super::openapi::log_stream)]
    stream: LogStream,
    payload: String,
}

/// `GET /jobs/{id}/logs` answer: API.md's list shape, `{items, total}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = LogPage)]
pub(super) struct LogsResponse {
    #[schema(value_type = Vec<LogLine>)]
    items: Vec<LogLineDto>,
    /// Lines after `after_seq`, ignoring `limit`.
    total: i64,
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    after_seq: Option<String>,
    limit: Option<String>,
}

async fn logs(
    state: web::Data<AppState>,
    reader: Reader,
    path: web::Path<String>,
    query: web::Query<LogsQuery>,
) -> Result<web::Json<LogsResponse>, ApiError> {
    let id = path.into_inner();
    // Read alongside the caller's check (`Reader`), which is answered
    // first, before a bad query's error: viewers and up may.
    let read = async move {
        let after_seq = int_param("after_seq", query.after_seq.as_deref())?.unwrap_or(0);
        if after_seq < 0 {
            return Err(ApiError::validation("after_seq: must not be negative"));
        }
        let (limit, _) = PageQuery {
            limit: query.limit.clone(),
            offset: None,
        }
        .resolve(DEFAULT_LOG_LIMIT, store::job_logs::MAX_LOG_PAGE)?;
        with_conn(&state.pool, move |conn| {
            let job = load_job(conn, &id)?;
            let lines = store::job_logs::list_after(conn, &id, after_seq, limit)?;
            let total = store::job_logs::page_total(&lines, limit, job.last_log_seq);
            Ok((lines, total))
        })
        .await
    };
    let (who, (lines, total)) = reader.alongside(read).await?;
    who.require(Role::Viewer)?;
    Ok(web::Json(LogsResponse {
        total,
        items: lines
            .into_iter()
            .map(|l| LogLineDto {
                seq: l.seq,
                ts: Time(l.ts),
                stream: l.stream,
                payload: l.payload,
            })
            .collect(),
    }))
}

/// `POST /jobs/{id}/cancel` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CancelResult)]
pub(super) struct CancelResponse {
    id: String,
    /// `cancelled` (it was still queued) or `cancel_requested` (the agent
    /// was asked to stop it; its final status follows).
    #[schema(schema_with = super::openapi::cancel_outcome)]
    outcome: &'static str,
}

async fn cancel(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let id = path.into_inner();
    let outcome = match state.actors.cancel_job(&id).await? {
        CancelOutcome::CancelledQueued => "cancelled",
        CancelOutcome::CancelRequested => "cancel_requested",
        CancelOutcome::AlreadyFinished => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_finished",
                format!("job {id} has already finished"),
            ))
        }
    };
    let job_id = id.clone();
    state
        .actors
        .write("auditing a cancel", move |conn| {
            audit(
                conn,
                &who,
                "job.cancel",
                Some(&job_id),
                Some(json!({ "outcome": outcome })),
            )
        })
        .await?;
    Ok(HttpResponse::Accepted().json(CancelResponse { id, outcome }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kinds parse by their wire names; an unknown kind lists the valid ones.
    #[test]
    fn kinds() {
        assert_eq!(parse_kind("backup").unwrap(), protocol::JobKind::Backup);
        let err = parse_kind("defrag").unwrap_err();
        assert!(err.message.starts_with("kind:"), "{}", err.message);
        assert!(err
            .message
            .contains("backup, init, forget, prune, check, unlock"));
    }

    /// Job list filters: bad status, kind or since are 400 naming the parameter; empty ones are ignored.
    #[test]
    fn list_filters() {
        let q = |status: &str, kind: &str, since: &str| ListQuery {
            host_id: Some(String::new()),
            status: Some(status.to_owned()),
            kind: Some(kind.to_owned()),
            since: Some(since.to_owned()),
            limit: None,
            offset: None,
        };
        let f = q("running", "check", "2026-01-01T00:00:00Z")
            .into_filter()
            .unwrap();
        assert_eq!(f.status, Some(JobStatus::Running));
        assert_eq!(f.kind, Some(JobKind::Check));
        assert_eq!(f.host_id, None);
        assert!(f.since.is_some());
        let f = q("", "", "").into_filter().unwrap();
        assert_eq!((f.status, f.kind, f.since), (None, None, None));
        for (query, field) in [
            (q("done", "", ""), "status:"),
            (q("", "defrag", ""), "kind:"),
            (q("", "", "today"), "since:"),
        ] {
            let err = query.into_filter().unwrap_err();
            assert!(err.message.starts_with(field), "{}", err.message);
        }
    }
}
