//! `GET /metrics`: the OpenMetrics text format (which Prometheus scrapes;
//! why not 0.0.4 is in [`crate::metrics`]), unauthenticated. It shows
//! counts, times, host ids and source group names only: no hostname, no
//! secret. The in-process counters come from [`crate::metrics::Metrics`];
//! hosts online, jobs by kind and status, the last successful backups,
//! the last verified restores and the check coverage are cheap aggregate
//! queries (summary rows and indexes) run at scrape time.

use actix_web::{web, HttpResponse};

use crate::http::error::{with_conn, ApiError};
use crate::http::AppState;
use crate::metrics::{render, DbSnapshot, CONTENT_TYPE};
use crate::store::{admin_queries, verification};

/// `GET /metrics`.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let db = with_conn(&state.pool, |conn| {
        Ok(DbSnapshot {
            hosts_online: admin_queries::hosts_online(conn)?,
            jobs: admin_queries::jobs_by_kind_and_status(conn)?,
            last_backups: admin_queries::last_successful_backups(conn)?
                .into_iter()
                .filter_map(|(host, group, at)| Some((host, group.unwrap_or_default(), at?)))
                .collect(),
            last_drills: verification::last_verified_restores(conn)?,
            check_coverage: verification::check_coverage(conn)?
                .into_iter()
                .map(|c| {
                    let ratio = c.ratio();
                    (c.host_id, ratio)
                })
                .collect(),
        })
    })
    .await?;
    let text = render(&state.actors.metrics, db)
        .map_err(|e| ApiError::internal(format!("encoding the metrics: {e}")))?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(text))
}
