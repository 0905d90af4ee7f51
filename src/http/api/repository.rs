//! A host's restic repository: `GET /hosts/{id}/repository` and
//! `PUT /hosts/{id}/repository` (operator). The password and credential
//! are write-only: they are sealed with `crypto::seal_str` bound to the
//! repository's id before they reach the store, and reads only say whether
//! they are set. A change goes through `change_host_config` (version bump
//! in the same write), which pushes `config.update` to the live session.

use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::table::Endpoint;
use super::{audit, change_host_config};
use crate::auth::Role;
use crate::crypto;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{live_host, Body, Time};
use crate::http::AppState;
use crate::store::{self, models};

/// Longest repository URL.
const MAX_URL_LEN: usize = 2048;
/// Longest user name, password or credential.
const MAX_SECRET_LEN: usize = 4096;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/hosts/{id}/repository", |r| r.to(get))
            .summary("Read a host's repository (secrets only as set / not set)")
            .role(Role::Viewer)
            .ok(200, "Repository"),
        Endpoint::put("/hosts/{id}/repository", |r| r.to(put))
            .summary("Set a host's repository; pushes config.update to its agent")
            .describe(
                "Absent (or null) username, password and credential keep the stored \
                 values. Secrets are sealed at rest and never returned.",
            )
            .role(Role::Operator)
            .body("RepositoryPut")
            .ok(200, "Repository")
            .error(409, "The repository changed during the request; try again."),
    ]
}

/// A repository as the API shows it: never a secret, only whether it is set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Repository)]
pub(super) struct RepositoryDto {
    url: String,
    username: Option<String>,
    password_set: bool,
    credential_set: bool,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Time,
}

impl From<&models::Repository> for RepositoryDto {
    fn from(r: &models::Repository) -> Self {
        RepositoryDto {
            url: r.url.clone(),
            username: r.username.clone(),
            password_set: r.password_set(),
            credential_set: r.credential_set(),
            updated_at: Time(r.updated_at),
        }
    }
}

/// `PUT /hosts/{id}/repository` body. `url` is required; an absent (or
/// null) `username`, `password` or `credential` keeps the stored value.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RepositoryPut)]
pub(super) struct PutRequest {
    url: String,
    username: Option<String>,
    /// The repository password; absent keeps it.
    #[schema(write_only)]
    password: Option<String>,
    /// The backend credential; absent keeps it.
    #[schema(write_only)]
    credential: Option<String>,
}

impl std::fmt::Debug for PutRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutRequest")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("credential", &self.credential.as_ref().map(|_| "***"))
            .finish()
    }
}

impl PutRequest {
    fn validate(&self) -> Result<(), ApiError> {
        let url = self.url.trim();
        if url.is_empty() {
            return Err(ApiError::validation("url: must not be empty"));
        }
        if url.len() > MAX_URL_LEN || url.chars().any(char::is_control) {
            return Err(ApiError::validation(format!(
                "url: at most {MAX_URL_LEN} characters, no control characters"
            )));
        }
        crate::repo_url::check(url).map_err(|e| ApiError::validation(format!("url: {e}")))?;
        let fields = [
            ("username", &self.username),
            ("password", &self.password),
            ("credential", &self.credential),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                if value.is_empty() {
                    return Err(ApiError::validation(format!(
                        "{name}: must not be empty (omit it to keep the stored value)"
                    )));
                }
                if value.len() > MAX_SECRET_LEN || value.contains('\0') {
                    return Err(ApiError::validation(format!(
                        "{name}: at most {MAX_SECRET_LEN} bytes, no NUL"
                    )));
                }
            }
        }
        Ok(())
    }
}

async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<web::Json<RepositoryDto>, ApiError> {
    who.require(Role::Viewer)?;
    let host_id = path.into_inner();
    let repo = with_conn(&state.pool, move |conn| {
        live_host(conn, &host_id)?;
        store::repositories::get_for_host(conn, &host_id)?
            .ok_or_else(|| ApiError::not_found(&format!("repository of host {host_id}")))
    })
    .await?;
    Ok(web::Json(RepositoryDto::from(&repo)))
}

async fn put(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body<PutRequest>,
) -> Result<web::Json<RepositoryDto>, ApiError> {
    who.require(Role::Operator)?;
    let host_id = path.into_inner();
    let body = body.into_inner();
    body.validate()?;
    let key = state.key.clone();
    let target = host_id.clone();
    let repo = change_host_config(&state, &host_id, "setting a repository", move |conn| {
        let current = store::repositories::get_for_host(conn, &target)?;
        let created = current.is_none();
        let id = current.map_or_else(store::new_id, |r| r.id);
        let seal = |secret: &str| {
            crypto::seal_str(&key, secret, id.as_bytes()).map_err(ApiError::internal)
        };
        let form = models::RepositoryUpsert {
            password_sealed: body.password.as_deref().map(seal).transpose()?.map(Some),
            credential_sealed: body.credential.as_deref().map(seal).transpose()?.map(Some),
            username: body.username.clone().map(Some),
            url: body.url.trim().to_owned(),
            id: id.clone(),
            ..models::RepositoryUpsert::default()
        };
        let repo = store::repositories::upsert_for_host(conn, &target, &form, store::now_ms())
            .map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::CheckViolation,
                    _,
                ) => ApiError::conflict(
                    "the host's repository changed during this request; try again",
                ),
                other => ApiError::from(other),
            })?
            .ok_or_else(|| ApiError::not_found(&format!("host {target}")))?;
        audit(
            conn,
            &who,
            if created {
                "repository.create"
            } else {
                "repository.update"
            },
            Some(&target),
            Some(json!({
                "repository_id": repo.id,
                "password_changed": body.password.is_some(),
                "credential_changed": body.credential.is_some(),
                "username_changed": body.username.is_some(),
            })),
        )?;
        Ok(repo)
    })
    .await?;
    Ok(web::Json(RepositoryDto::from(&repo)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Empty URL or an empty secret is a 400 naming the field; the Debug form hides secrets.
    #[test]
    fn put_validation_and_debug() {
        let empty_url: PutRequest = serde_json::from_str(r#"{"url":" "}"#).unwrap();
        assert!(empty_url
            .validate()
            .unwrap_err()
            .message
            .starts_with("url:"));
        let empty_pw: PutRequest =
            serde_json::from_str(r#"{"url":"/srv/repo","password":""}"#).unwrap();
        assert!(empty_pw
            .validate()
            .unwrap_err()
            .message
            .starts_with("password:"));
        let ok: PutRequest = serde_json::from_str(
            r#"{"url":"s3:host/bucket","password":"hunter2","credential":"aws-secret"}"#,
        )
        .unwrap();
        assert!(ok.validate().is_ok());
        let text = format!("{ok:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("aws-secret"),
            "{text}"
        );
        assert!(serde_json::from_str::<PutRequest>(r#"{"url":"x","password_set":true}"#).is_err());
    }

    /// A password in the URL (issue 15 B.6) and an sftp host that ssh would
    /// read as an option (B.9) are 400s naming the field and the way out.
    #[test]
    fn put_refuses_unsafe_urls() {
        let with_password: PutRequest =
            serde_json::from_str(r#"{"url":"rest:https://u:hunter2@h:8000/r"}"#).unwrap();
        let message = with_password.validate().unwrap_err().message;
        assert!(
            message.starts_with("url:")
                && message.contains("`username`")
                && message.contains("`credential`")
                && !message.contains("hunter2"),
            "{message}"
        );
        let dashed: PutRequest =
            serde_json::from_str(r#"{"url":"sftp:-oProxyCommand=sh:/repo"}"#).unwrap();
        let message = dashed.validate().unwrap_err().message;
        assert!(
            message.starts_with("url:") && message.contains("'-'"),
            "{message}"
        );
    }
}
