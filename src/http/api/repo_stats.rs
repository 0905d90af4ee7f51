//! `GET /hosts/{id}/repo-stats` (`?since=&limit=&offset=`): the time series
//! of the host's repository statistics (`repo.stats` reports), oldest
//! first.

use actix_web::web;
use serde::{Deserialize, Serialize};

use super::table::Endpoint;
use super::{List, PageQuery};
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{live_host, parse_time, Time};
use crate::http::AppState;
use crate::store::{self, models};

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::get("/hosts/{id}/repo-stats", |r| r.to(list))
        .summary("A host's repository statistics, oldest first (a time series)")
        .role(Role::Viewer)
        .query_time("since", "Only samples recorded at or after this time.")
        .query("limit", "integer", "Page size, 1 to 1000 (default 1000).")
        .query("offset", "integer", "Items to skip (default 0).")
        .ok(200, "RepoStatsList")]
}

/// One statistics sample as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = RepoStats)]
pub(super) struct RepoStatsDto {
    #[schema(value_type = String, format = DateTime)]
    recorded_at: Time,
    size_bytes: Option<i64>,
    snapshot_count: Option<i64>,
    dedup_ratio: Option<f64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_check_at: Option<Time>,
    last_check_status: Option<String>,
    #[schema(schema_with = super::openapi::lock_state_or_null)]
    lock_state: Option<String>,
}

impl From<models::RepoStats> for RepoStatsDto {
    fn from(s: models::RepoStats) -> Self {
        RepoStatsDto {
            recorded_at: Time(s.recorded_at),
            size_bytes: s.size_bytes,
            snapshot_count: s.snapshot_count,
            dedup_ratio: s.dedup_ratio,
            last_check_at: Time::opt(s.last_check_at),
            last_check_status: s.last_check_status,
            lock_state: s.lock_state,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    since: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<List<RepoStatsDto>>, ApiError> {
    who.require(Role::Viewer)?;
    let host_id = path.into_inner();
    let ListQuery {
        since,
        limit,
        offset,
    } = query.into_inner();
    let since = since
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_time("since", &s))
        .transpose()?;
    // A chart wants the whole series: the default page is the largest.
    let (limit, offset) = PageQuery { limit, offset }.resolve(store::MAX_PAGE, store::MAX_PAGE)?;
    let page = with_conn(&state.pool, move |conn| {
        live_host(conn, &host_id)?;
        Ok(store::api_queries::repo_stats_page(
            conn, &host_id, since, limit, offset,
        )?)
    })
    .await?;
    Ok(web::Json(List {
        items: page.items.into_iter().map(RepoStatsDto::from).collect(),
        total: page.total,
    }))
}
