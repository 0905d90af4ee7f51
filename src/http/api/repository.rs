//! A host's restic repository: `GET /hosts/{id}/repository` and
//! `PUT /hosts/{id}/repository` (operator). The password and credential
//! are write-only: they are sealed with `crypto::seal_str` bound to the
//! repository's id before they reach the store, and reads only say whether
//! they are set. A change goes through `change_host_config` (version bump
//! in the same write), which pushes `config.update` to the live session.

use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::hosts::nullable;
use super::table::Endpoint;
use super::{audit, change_host_config};
use crate::auth::Role;
use crate::crypto;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{live_host, Body, Time};
use crate::http::AppState;
use crate::ids::HostId;
use crate::store::{self, models};

/// Longest repository URL.
pub(super) const MAX_URL_LEN: usize = 2048;
/// Longest user name, password or credential.
pub(super) const MAX_SECRET_LEN: usize = 4096;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/hosts/{id}/repository", |r| r.to(get))
            .summary("Read a host's repository (secrets only as set / not set)")
            .role(Role::Viewer)
            .ok(200, "Repository"),
        Endpoint::put("/hosts/{id}/repository", |r| r.to(put))
            .summary("Set a host's repository; pushes config.update to its agent")
            .describe(
                "An absent username, password or credential keeps the stored value; \
                 `null` clears the username or credential (the agent drops it too). \
                 Secrets are sealed at rest and never returned.",
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
    /// The repository's id (a shared one's, to attach other hosts).
    id: String,
    /// The shared repository's name; null for the host's private one.
    name: Option<String>,
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
            id: r.id.clone(),
            name: r.name.clone(),
            url: r.url.clone(),
            username: r.username.clone(),
            password_set: r.password_set(),
            credential_set: r.credential_set(),
            updated_at: Time(r.updated_at),
        }
    }
}

/// `PUT /hosts/{id}/repository` body: either `repository_id` alone
/// (attach the host to a shared repository), or the inline form (`url`
/// required) that sets the host's private repository; there an absent
/// `username`, `password` or `credential` keeps the stored value and
/// `null` clears the username or the credential (a password cannot be
/// cleared: restic needs one).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RepositoryPut)]
pub(super) struct PutRequest {
    /// A shared repository to attach the host to (then nothing else).
    repository_id: Option<String>,
    /// The private repository's URL (required without `repository_id`).
    url: Option<String>,
    /// The back end's user name; absent keeps it, `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    username: Option<Option<String>>,
    /// The repository password; absent keeps it (`null` is refused).
    #[schema(write_only)]
    #[serde(default, deserialize_with = "nullable")]
    password: Option<Option<String>>,
    /// The backend credential; absent keeps it, `null` clears it.
    #[schema(write_only)]
    #[serde(default, deserialize_with = "nullable")]
    credential: Option<Option<String>>,
}

impl std::fmt::Debug for PutRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutRequest")
            .field("repository_id", &self.repository_id)
            .field("url", &self.url)
            .field("username", &self.username)
            .field(
                "password",
                &self.password.as_ref().map(|v| v.as_ref().map(|_| "***")),
            )
            .field(
                "credential",
                &self.credential.as_ref().map(|v| v.as_ref().map(|_| "***")),
            )
            .finish()
    }
}

/// A repository URL: not empty, not too long, no control characters.
pub(crate) fn check_url(url: &str) -> Result<(), ApiError> {
    if url.trim().is_empty() {
        return Err(ApiError::validation("url: must not be empty"));
    }
    if url.len() > MAX_URL_LEN || url.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "url: at most {MAX_URL_LEN} characters, no control characters"
        )));
    }
    crate::repo_url::check(url).map_err(|e| ApiError::validation(format!("url: {e}")))?;
    Ok(())
}

/// A user name, password or credential, when given: not empty, not too
/// long, no NUL.
pub(crate) fn check_secret(name: &str, value: Option<&String>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Ok(());
    };
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
    Ok(())
}

impl PutRequest {
    fn validate(&self) -> Result<(), ApiError> {
        if let Some(id) = &self.repository_id {
            if id.trim().is_empty() {
                return Err(ApiError::validation("repository_id: must not be empty"));
            }
            let inline = [
                ("url", self.url.is_some()),
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
                ("credential", self.credential.is_some()),
            ];
            if let Some((field, _)) = inline.iter().find(|(_, given)| *given) {
                return Err(ApiError::validation(format!(
                    "{field}: not allowed with repository_id (a shared repository's settings are its own)"
                )));
            }
            return Ok(());
        }
        let Some(url) = &self.url else {
            return Err(ApiError::validation(
                "url: required (or repository_id to attach a shared repository)",
            ));
        };
        check_url(url)?;
        if matches!(self.password, Some(None)) {
            return Err(ApiError::validation(
                "password: cannot be cleared (restic needs one); omit it to keep the stored value",
            ));
        }
        check_secret("username", self.username.as_ref().and_then(Option::as_ref))?;
        check_secret("password", self.password.as_ref().and_then(Option::as_ref))?;
        check_secret(
            "credential",
            self.credential.as_ref().and_then(Option::as_ref),
        )
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
    if let Some(repository_id) = body.repository_id {
        return attach(&state, who, HostId::from(host_id), repository_id).await;
    }
    let url = body.url.clone().unwrap_or_default();
    let key = state.key.clone();
    let target = host_id.clone();
    let repo = change_host_config(&state, &host_id, "setting a repository", move |conn| {
        let current = store::repositories::get_for_host(conn, &target)?.filter(|r| !r.is_shared());
        let created = current.is_none();
        let id = current.map_or_else(store::new_id, |r| r.id);
        let seal = |secret: &str| {
            crypto::seal_str(&key, secret, id.as_bytes()).map_err(ApiError::internal)
        };
        let form = models::RepositoryUpsert {
            password_sealed: body
                .password
                .clone()
                .flatten()
                .as_deref()
                .map(seal)
                .transpose()?
                .map(Some),
            credential_sealed: match &body.credential {
                None => None,
                Some(None) => Some(None),
                Some(Some(credential)) => Some(Some(seal(credential.as_str())?)),
            },
            username: body.username.clone(),
            url: url.trim().to_owned(),
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
                "username_cleared": matches!(body.username, Some(None)),
                "credential_cleared": matches!(body.credential, Some(None)),
            })),
        )?;
        Ok(repo)
    })
    .await?;
    Ok(web::Json(RepositoryDto::from(&repo)))
}

/// Attaches the host to a shared repository (`repository_id`): one write
/// with its audit row, then `config.update` goes to the host.
async fn attach(
    state: &AppState,
    who: Principal,
    host_id: HostId,
    repository_id: String,
) -> Result<web::Json<RepositoryDto>, ApiError> {
    let target = host_id.clone();
    let repo = change_host_config(
        state,
        &host_id,
        "attaching a shared repository",
        move |conn| {
            let repo = store::repositories::get_shared(conn, &repository_id)?.ok_or_else(|| {
                ApiError::validation(format!(
                    "repository_id: no shared repository {repository_id:?}"
                ))
            })?;
            store::repositories::attach(conn, &target, &repo.id, store::now_ms())?;
            audit(
                conn,
                &who,
                "repository.attach",
                Some(&target),
                Some(json!({"repository_id": repo.id, "name": repo.name})),
            )?;
            Ok(repo)
        },
    )
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
