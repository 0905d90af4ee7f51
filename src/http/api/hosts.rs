//! Hosts: `GET /hosts` (`?status=online|offline&label=key=value&q=&update_available=&repository_id=&limit=&offset=`,
//! `label` repeatable, every one must match;
//! in natural order of the host names),
//! `GET /hosts/{id}`, `PATCH /hosts/{id}` (display name, labels; operator)
//! and `DELETE /hosts/{id}` (revoke: the agent token stops working and the
//! live session closes; admin). Revoked hosts are gone from these routes.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::table::Endpoint;
use super::{audit, List, PageQuery, DEFAULT_LIMIT};
use crate::agent_release::AgentRelease;
use crate::auth::Role;
use crate::http::auth::{Principal, Reader};
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{host_list, live_host, live_host_with_version, Body, Time};
use crate::http::AppState;
use crate::store::hosts::{HostWithVersion, VersionFilter};
use crate::store::{self, models};

/// Longest display name.
const MAX_DISPLAY_NAME_LEN: usize = 255;
/// Most labels on one host.
const MAX_LABELS: usize = 64;
/// Longest label key.
const MAX_LABEL_KEY_LEN: usize = 63;
/// Longest label value.
const MAX_LABEL_VALUE_LEN: usize = 255;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/hosts", |r| r.to(list))
            .summary("List hosts")
            .role(Role::Viewer)
            .query_enum(
                "status",
                vec!["online", "offline"],
                "Only hosts in this state.",
            )
            .query(
                "q",
                "string",
                "Only hosts whose hostname or display name contains this text.",
            )
            .query(
                "label",
                "string",
                "Only hosts with this label, written key=value; repeat it to require several (all must match).",
            )
            .query_enum(
                "update_available",
                vec!["true", "false"],
                "true: only hosts whose agent is older than the newest agent release; false: only the others.",
            )
            .query(
                "repository_id",
                "string",
                "Only hosts attached to this repository.",
            )
            .paged()
            .ok(200, "HostList"),
        Endpoint::get("/hosts/{id}", |r| r.to(get))
            .summary("Read a host")
            .role(Role::Viewer)
            .ok(200, "Host"),
        Endpoint::patch("/hosts/{id}", |r| r.to(patch))
            .summary("Change a host's display name or labels")
            .role(Role::Operator)
            .body("HostPatch")
            .ok(200, "Host"),
        Endpoint::delete("/hosts/{id}", |r| r.to(revoke))
            .summary("Revoke a host: its agent token stops working, its session closes")
            .role(Role::Admin)
            .empty(204, "Revoked."),
    ]
}

/// A host as the API shows it (API.md's host fields, plus labels and
/// enrolment time).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Host)]
pub struct HostDto {
    pub id: String,
    pub hostname: String,
    pub display_name: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub os: String,
    pub arch: String,
    pub agent_version: Option<String>,
    pub restic_version: Option<String>,
    #[schema(schema_with = super::openapi::host_status)]
    pub status: &'static str,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen: Option<Time>,
    #[schema(value_type = String, format = DateTime)]
    pub enrolled_at: Time,
    /// The current version of the host's schedule list.
    pub schedule_version: i64,
    /// The last version the agent acknowledged (0: never).
    pub acked_schedule_version: i64,
    /// The version of what `config.update` carries (the repository
    /// settings); bumped by every change to them.
    pub config_version: i64,
    /// The newest config version the agent acknowledged (0: never).
    pub acked_config_version: i64,
    /// When `config_version` last changed (null: not since enrolment).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub config_changed_at: Option<Time>,
    /// When the agent acknowledged `acked_config_version`.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub config_acked_at: Option<Time>,
    /// Whether the agent is older than the newest agent release (by
    /// semantic version; false when its version is unknown or unreadable).
    pub update_available: bool,
    /// The newest agent release the server knows (`--agent-latest-version`).
    pub latest_agent_version: String,
}

impl HostDto {
    fn from_row(row: HostWithVersion, release: &AgentRelease) -> Self {
        let HostWithVersion {
            host,
            schedule,
            config,
        } = row;
        HostDto {
            update_available: release.update_available(host.agent_version.as_deref()),
            latest_agent_version: release.latest.to_string(),
            labels: host.labels,
            status: if host.online { "online" } else { "offline" },
            last_seen: Time::opt(host.last_seen_at),
            enrolled_at: Time(host.enrolled_at),
            schedule_version: schedule.as_ref().map_or(0, |s| s.version),
            acked_schedule_version: schedule.as_ref().map_or(0, |s| s.acked_version),
            config_version: config.config_version,
            acked_config_version: config.acked_config_version,
            config_changed_at: Time::opt(config.config_changed_at),
            config_acked_at: Time::opt(config.config_acked_at),
            id: host.id.into(),
            hostname: host.hostname,
            display_name: host.display_name,
            os: host.os,
            arch: host.arch,
            agent_version: host.agent_version,
            restic_version: host.restic_version,
        }
    }
}

/// `GET /hosts` parameters; `label` may repeat (every one must match).
#[derive(Debug, Default)]
struct ListQuery {
    status: Option<String>,
    labels: Vec<String>,
    q: Option<String>,
    update_available: Option<String>,
    repository_id: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

impl ListQuery {
    /// Reads the query string as pairs (serde's struct form refuses a
    /// repeated key); an unknown parameter is ignored, as before.
    fn parse(query: &str) -> Result<Self, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|e| ApiError::bad_request(format!("query: {e}")))?
            .into_inner();
        let mut q = ListQuery::default();
        for (key, value) in pairs {
            match key.as_str() {
                "status" => q.status = Some(value),
                "label" => q.labels.push(value),
                "q" => q.q = Some(value),
                "update_available" => q.update_available = Some(value),
                "repository_id" => q.repository_id = Some(value),
                "limit" => q.limit = Some(value),
                "offset" => q.offset = Some(value),
                _ => {}
            }
        }
        Ok(q)
    }
}

async fn list(
    state: web::Data<AppState>,
    reader: Reader,
    req: actix_web::HttpRequest,
) -> Result<web::Json<List<HostDto>>, ApiError> {
    // Read alongside the caller's check (`Reader`): viewers and up may.
    let (who, list) = reader
        .alongside(read_list(state, req.query_string().to_owned()))
        .await?;
    who.require(Role::Viewer)?;
    Ok(list)
}

/// The hosts `GET /hosts?query` lists.
async fn read_list(
    state: web::Data<AppState>,
    query: String,
) -> Result<web::Json<List<HostDto>>, ApiError> {
    let ListQuery {
        status,
        labels,
        q,
        update_available,
        repository_id,
        limit,
        offset,
    } = ListQuery::parse(&query)?;
    let update_available = match update_available.as_deref() {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::validation(format!(
                "update_available: expected true or false, got {other:?}"
            )))
        }
    };
    let label: Vec<(String, String)> = labels
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            store::hosts::parse_label_filter(&l).ok_or_else(|| {
                ApiError::validation(format!("label: expected key=value, got {l:?}"))
            })
        })
        .collect::<Result<_, _>>()?;
    let online = match status.as_deref() {
        None | Some("") => None,
        Some("online") => Some(true),
        Some("offline") => Some(false),
        Some(other) => {
            return Err(ApiError::validation(format!(
                "status: expected online or offline, got {other:?}"
            )))
        }
    };
    let (limit, offset) = PageQuery { limit, offset }.resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
    let release = state.actors.config.agent_release.clone();
    let mut filter = store::hosts::HostFilter {
        online,
        query: q.filter(|q| !q.trim().is_empty()),
        labels: label,
        include_revoked: false,
        repository_id: repository_id.filter(|r| !r.trim().is_empty()),
        limit,
        offset,
        ..Default::default()
    };
    if let Some(wanted) = update_available {
        let versions = with_conn(&state.pool, |conn| {
            Ok(store::hosts::distinct_agent_versions(conn)?)
        })
        .await?;
        let older = release.older_of(versions.iter().map(String::as_str));
        filter.agent_versions = Some(if wanted {
            VersionFilter::In(older)
        } else {
            VersionFilter::NotIn(older)
        });
    }
    let page = host_list(&state.pool, filter).await?;
    let items = page
        .items
        .into_iter()
        .map(|row| HostDto::from_row(row, &release))
        .collect();
    Ok(web::Json(List {
        items,
        total: page.total,
    }))
}

/// The live host with this id and its schedule versions.
fn load(
    conn: &mut store::DbConnection,
    id: &str,
    release: &AgentRelease,
) -> Result<HostDto, ApiError> {
    Ok(HostDto::from_row(
        live_host_with_version(conn, id)?,
        release,
    ))
}

async fn get(
    state: web::Data<AppState>,
    reader: Reader,
    path: web::Path<String>,
) -> Result<web::Json<HostDto>, ApiError> {
    let id = path.into_inner();
    let release = state.actors.config.agent_release.clone();
    // Read alongside the caller's check (`Reader`): viewers and up may.
    let (who, host) = reader
        .alongside(with_conn(&state.pool, move |conn| {
            load(conn, &id, &release)
        }))
        .await?;
    who.require(Role::Viewer)?;
    Ok(web::Json(host))
}

/// Distinguishes an absent field (`None`) from an explicit `null`
/// (`Some(None)`): the protocol's three-state decoding.
pub(super) use crate::protocol::nullable;

/// `PATCH /hosts/{id}` body: absent fields are left as they are;
/// `display_name: null` clears the display name.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = HostPatch)]
pub(super) struct PatchRequest {
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    display_name: Option<Option<String>>,
    labels: Option<BTreeMap<String, String>>,
}

impl PatchRequest {
    fn into_patch(self) -> Result<models::HostPatch, ApiError> {
        let display_name = match self.display_name {
            Some(Some(name)) => {
                let name = name.trim().to_owned();
                if name.is_empty() {
                    return Err(ApiError::validation(
                        "display_name: must not be empty (send null to clear it)",
                    ));
                }
                if name.chars().count() > MAX_DISPLAY_NAME_LEN {
                    return Err(ApiError::validation(format!(
                        "display_name: at most {MAX_DISPLAY_NAME_LEN} characters"
                    )));
                }
                Some(Some(name))
            }
            other => other,
        };
        if let Some(labels) = &self.labels {
            validate_labels(labels)?;
        }
        let labels = self.labels;
        Ok(models::HostPatch {
            display_name,
            labels,
        })
    }
}

pub(crate) fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if labels.len() > MAX_LABELS {
        return Err(ApiError::validation(format!(
            "labels: at most {MAX_LABELS} labels"
        )));
    }
    for (key, value) in labels {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_LABEL_KEY_LEN
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !key_ok {
            return Err(ApiError::validation(format!(
                "labels: key {key:?} must be 1-{MAX_LABEL_KEY_LEN} letters, digits, '.', '_', '-' or '/'"
            )));
        }
        if value.chars().count() > MAX_LABEL_VALUE_LEN {
            return Err(ApiError::validation(format!(
                "labels: value of {key:?} is longer than {MAX_LABEL_VALUE_LEN} characters"
            )));
        }
    }
    Ok(())
}

async fn patch(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body<PatchRequest>,
) -> Result<web::Json<HostDto>, ApiError> {
    who.require(Role::Operator)?;
    let id = path.into_inner();
    let body = body.into_inner();
    let changed: Vec<&str> = [
        body.display_name.is_some().then_some("display_name"),
        body.labels.is_some().then_some("labels"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let detail = json!({ "fields": changed });
    let patch = body.into_patch()?;
    let target = id.clone();
    let release = state.actors.config.agent_release.clone();
    let (host, changed) = state
        .actors
        .write("changing a host", move |conn| {
            live_host(conn, &id)?;
            let now = store::now_ms();
            let checks_before = store::health::effective_checks(conn, &id)?;
            store::hosts::patch(conn, &id, &patch, now)?;
            // New labels: the policies that match now give their groups,
            // schedules and health checks, the ones that no longer match
            // take theirs.
            let changed = match &patch.labels {
                Some(labels) => {
                    let mut synced = store::policy_sync::sync_host(
                        conn,
                        &id,
                        labels,
                        store::policy_sync::OnConflict::Refuse,
                        now,
                    )?;
                    // New health checks go with the schedules' push
                    // (health.set follows schedule.set).
                    synced.schedules |= store::health::relabelled(conn, &id, &checks_before)?;
                    synced
                }
                None => store::policy_sync::Synced::default(),
            };
            audit(conn, &who, "host.update", Some(&id), Some(detail))?;
            Ok::<_, ApiError>((load(conn, &id, &release)?, changed))
        })
        .await?;
    if changed.any() {
        let one = || vec![target.clone()];
        state.actors.push_configs(store::policy_sync::Applied {
            schedules: if changed.schedules { one() } else { Vec::new() },
            repositories: if changed.repository {
                one()
            } else {
                Vec::new()
            },
            ..store::policy_sync::Applied::default()
        });
    }
    Ok(web::Json(host))
}

async fn revoke(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Admin)?;
    let id = path.into_inner();
    let check = id.clone();
    with_conn(&state.pool, move |conn| live_host(conn, &check).map(|_| ())).await?;
    state.actors.revoke_host(&id).await?;
    state
        .actors
        .write("auditing a host revocation", move |conn| {
            audit(conn, &who, "host.revoke", Some(&id), None)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `display_name` absent, null and a string are three different patches.
    #[test]
    fn patch_distinguishes_absent_and_null() {
        let absent: PatchRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.display_name, None);
        let null: PatchRequest = serde_json::from_str(r#"{"display_name":null}"#).unwrap();
        assert_eq!(null.display_name, Some(None));
        let set: PatchRequest = serde_json::from_str(r#"{"display_name":" web "}"#).unwrap();
        assert_eq!(
            set.into_patch().unwrap().display_name,
            Some(Some("web".to_owned()))
        );
    }

    /// Bad label keys, too many labels and empty names are refused with the field named.
    #[test]
    fn patch_validation() {
        let bad_key: PatchRequest = serde_json::from_str(r#"{"labels":{"a b":"x"}}"#).unwrap();
        assert!(bad_key
            .into_patch()
            .unwrap_err()
            .message
            .starts_with("labels:"));
        let empty: PatchRequest = serde_json::from_str(r#"{"display_name":"  "}"#).unwrap();
        assert!(empty
            .into_patch()
            .unwrap_err()
            .message
            .starts_with("display_name:"));
        let many: BTreeMap<String, String> = (0..=MAX_LABELS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        assert!(validate_labels(&many).is_err());
        assert!(serde_json::from_str::<PatchRequest>(r#"{"hostname":"x"}"#).is_err());
    }
}
