//! `GET /missed-runs` (`?host_id=&since=&limit=&offset=`): schedule times
//! that passed without a fire, latest first.

use actix_web::web;
use serde::{Deserialize, Serialize};

use super::table::Endpoint;
use super::{List, PageQuery, DEFAULT_LIMIT};
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{parse_time, Time};
use crate::http::AppState;
use crate::store::{self, models};

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::get("/missed-runs", |r| r.to(list))
        .summary("Schedule times that passed without a run, latest first")
        .role(Role::Viewer)
        .query("host_id", "string", "Only this host's missed runs.")
        .query_time("since", "Only runs scheduled at or after this time.")
        .paged()
        .ok(200, "MissedRunList")]
}

/// One missed run as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MissedRun)]
pub(super) struct MissedRunDto {
    id: String,
    host_id: String,
    schedule_id: String,
    /// The cron time that passed without a fire.
    #[schema(value_type = String, format = DateTime)]
    scheduled_at: Time,
    /// When the server noticed.
    #[schema(value_type = String, format = DateTime)]
    detected_at: Time,
}

impl From<models::MissedRun> for MissedRunDto {
    fn from(m: models::MissedRun) -> Self {
        MissedRunDto {
            id: m.id,
            host_id: m.host_id,
            schedule_id: m.schedule_id,
            scheduled_at: Time(m.scheduled_at),
            detected_at: Time(m.detected_at),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    host_id: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<ListQuery>,
) -> Result<web::Json<List<MissedRunDto>>, ApiError> {
    who.require(Role::Viewer)?;
    let ListQuery {
        host_id,
        since,
        limit,
        offset,
    } = query.into_inner();
    let since = since
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_time("since", &s))
        .transpose()?;
    let (limit, offset) = PageQuery { limit, offset }.resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
    let filter = store::missed_runs::MissedRunFilter {
        host_id: host_id.filter(|h| !h.trim().is_empty()),
        since,
        limit,
        offset,
        ..store::missed_runs::MissedRunFilter::default()
    };
    let page = with_conn(&state.pool, move |conn| {
        Ok(store::missed_runs::list(conn, &filter)?)
    })
    .await?;
    Ok(web::Json(List {
        items: page.items.into_iter().map(MissedRunDto::from).collect(),
        total: page.total,
    }))
}
