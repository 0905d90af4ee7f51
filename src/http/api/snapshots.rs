//! `GET /hosts/{id}/snapshots` (`?limit=&offset=`): the host's snapshots
//! as its agent last reported them (a projection of the last
//! `snapshots.report`), newest first.

use actix_web::web;
use serde::{Deserialize, Serialize};

use super::table::Endpoint;
use super::{List, PageQuery, DEFAULT_LIMIT};
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{live_host, Time};
use crate::http::AppState;
use crate::store::{self, models};

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::get("/hosts/{id}/snapshots", |r| r.to(list))
        .summary("A host's snapshots as its agent last reported them, newest first")
        .role(Role::Viewer)
        .paged()
        .ok(200, "SnapshotList")]
}

/// One snapshot as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Snapshot)]
pub(super) struct SnapshotDto {
    /// restic's full snapshot id.
    id: String,
    short_id: String,
    #[schema(value_type = String, format = DateTime)]
    time: Time,
    hostname: String,
    paths: Vec<String>,
    tags: Vec<String>,
    size_bytes: Option<i64>,
    file_count: Option<i64>,
    /// When the report that listed it arrived.
    #[schema(value_type = String, format = DateTime)]
    reported_at: Time,
}

impl SnapshotDto {
    fn from_row(s: models::Snapshot) -> Self {
        SnapshotDto {
            paths: s.paths,
            tags: s.tags,
            id: s.snapshot_id,
            short_id: s.short_id,
            time: Time(s.time),
            hostname: s.hostname,
            size_bytes: s.size_bytes,
            file_count: s.file_count,
            reported_at: Time(s.reported_at),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    offset: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<List<SnapshotDto>>, ApiError> {
    who.require(Role::Viewer)?;
    let host_id = path.into_inner();
    let ListQuery { limit, offset } = query.into_inner();
    let (limit, offset) = PageQuery { limit, offset }.resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
    let page = with_conn(&state.pool, move |conn| {
        live_host(conn, &host_id)?;
        Ok(store::api_queries::snapshots_page(
            conn, &host_id, limit, offset,
        )?)
    })
    .await?;
    let items = page.items.into_iter().map(SnapshotDto::from_row).collect();
    Ok(web::Json(List {
        items,
        total: page.total,
    }))
}
