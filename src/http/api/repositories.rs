//! Shared repositories (issue 12 §3): `GET/POST /repositories`,
//! `GET/PUT/DELETE /repositories/{id}`. Operators write, viewers read.
//! Hosts are attached with `PUT /hosts/{id}/repository
//! {"repository_id": …}` (`repository`).
//!
//! The password and credential are write-only: sealed with
//! `crypto::seal_str` bound to the repository's id before they reach the
//! store; reads say only `password_set` / `credential_set`. A change to a
//! repository's settings bumps the configuration of every host attached
//! and pushes `config.update` to them. A repository hosts still use cannot
//! be deleted (409 naming them).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::hosts::nullable;
use super::repository::{check_secret, check_url};
use super::table::Endpoint;
use super::{audit, List};
use crate::auth::Role;
use crate::crypto;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{live_host, Body, Time};
use crate::http::AppState;
use crate::store::repositories::{self, SharedForm};
use crate::store::{self, models, DbConnection};

/// Longest repository name.
const MAX_NAME_LEN: usize = 100;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/repositories", |r| r.to(list))
            .summary("List the shared repositories, by name")
            .role(Role::Viewer)
            .ok(200, "SharedRepositoryList"),
        Endpoint::post("/repositories", |r| r.to(create))
            .summary("Create a shared repository (attach hosts with PUT /hosts/{id}/repository)")
            .describe(
                "name, url and password are required; username, credential and \
                 maintenance_host_id are optional. Secrets are sealed at rest and never returned.",
            )
            .role(Role::Operator)
            .body("SharedRepositoryCreate")
            .ok(201, "SharedRepository")
            .error(409, "A repository with this name exists."),
        Endpoint::get("/repositories/{id}", |r| r.to(get))
            .summary("Read a shared repository (secrets only as set / not set)")
            .role(Role::Viewer)
            .ok(200, "SharedRepository"),
        Endpoint::put("/repositories/{id}", |r| r.to(put))
            .summary("Change a shared repository; pushes config.update to every host attached")
            .describe("Absent fields keep their value; maintenance_host_id: null clears it.")
            .role(Role::Operator)
            .body("SharedRepositoryUpdate")
            .ok(200, "SharedRepository")
            .error(409, "Another repository has this name."),
        Endpoint::delete("/repositories/{id}", |r| r.to(delete))
            .summary("Delete a shared repository no host uses")
            .role(Role::Operator)
            .empty(204, "Deleted.")
            .error(409, "Hosts still use the repository (they are listed)."),
    ]
}

/// A shared repository as the API shows it: never a secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SharedRepository)]
pub(super) struct SharedRepositoryDto {
    id: String,
    name: String,
    url: String,
    username: Option<String>,
    password_set: bool,
    credential_set: bool,
    /// The host that runs prune and check when it is online.
    maintenance_host_id: Option<String>,
    /// The hosts attached to it.
    host_ids: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Time,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Time,
}

impl SharedRepositoryDto {
    fn new(r: &models::Repository, host_ids: Vec<String>) -> Self {
        SharedRepositoryDto {
            id: r.id.clone(),
            name: r.name.clone().unwrap_or_default(),
            url: r.url.clone(),
            username: r.username.clone(),
            password_set: r.password_set(),
            credential_set: r.credential_set(),
            maintenance_host_id: r.maintenance_host_id.clone(),
            host_ids,
            created_at: Time(r.created_at),
            updated_at: Time(r.updated_at),
        }
    }
}

/// `POST /repositories` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SharedRepositoryCreate)]
pub(super) struct CreateRequest {
    name: Option<String>,
    url: Option<String>,
    /// The repository password (required).
    #[schema(write_only)]
    password: Option<String>,
    username: Option<String>,
    /// The backend credential.
    #[schema(write_only)]
    credential: Option<String>,
    maintenance_host_id: Option<String>,
}

/// `PUT /repositories/{id}` body: absent fields keep their value; `null`
/// clears the user name, the credential or the maintenance host.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SharedRepositoryUpdate)]
pub(super) struct UpdateRequest {
    name: Option<String>,
    url: Option<String>,
    #[schema(write_only)]
    password: Option<String>,
    /// `null` clears it (on every attached agent too).
    #[serde(default, deserialize_with = "nullable")]
    username: Option<Option<String>>,
    /// `null` clears it (on every attached agent too).
    #[schema(write_only)]
    #[serde(default, deserialize_with = "nullable")]
    credential: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    maintenance_host_id: Option<Option<String>>,
}

impl std::fmt::Debug for CreateRequest {
    /// The secrets are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateRequest")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl From<CreateRequest> for UpdateRequest {
    fn from(c: CreateRequest) -> Self {
        UpdateRequest {
            name: c.name,
            url: c.url,
            password: c.password,
            username: c.username.map(Some),
            credential: c.credential.map(Some),
            maintenance_host_id: c.maintenance_host_id.map(Some),
        }
    }
}

/// What a create or update stores: `body`'s fields, its secrets sealed
/// for the repository `id`.
fn sealed_form(
    key: &crate::crypto::SecretKey,
    id: &str,
    name: Option<String>,
    body: &UpdateRequest,
) -> Result<SharedForm, ApiError> {
    let seal =
        |secret: &str| crypto::seal_str(key, secret, id.as_bytes()).map_err(ApiError::internal);
    Ok(SharedForm {
        name,
        url: body.url.as_deref().map(|u| u.trim().to_owned()),
        username: body.username.clone(),
        password_sealed: body.password.as_deref().map(seal).transpose()?,
        credential_sealed: match &body.credential {
            None => None,
            Some(None) => Some(None),
            Some(Some(credential)) => Some(Some(seal(credential.as_str())?)),
        },
        maintenance_host_id: body.maintenance_host_id.clone(),
    })
}

impl std::fmt::Debug for UpdateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateRequest")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field(
                "credential",
                &self.credential.as_ref().map(|c| c.as_ref().map(|_| "***")),
            )
            .field("maintenance_host_id", &self.maintenance_host_id)
            .finish()
    }
}

pub(crate) fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "name: 1 to {MAX_NAME_LEN} characters, no control characters"
        )));
    }
    Ok(name.to_owned())
}

fn required<'a>(field: &str, value: &'a Option<String>) -> Result<&'a String, ApiError> {
    value
        .as_ref()
        .ok_or_else(|| ApiError::validation(format!("{field}: required")))
}

/// Checks the fields common to both bodies.
fn check_fields(
    url: Option<&String>,
    username: Option<&String>,
    password: Option<&String>,
    credential: Option<&String>,
) -> Result<(), ApiError> {
    if let Some(url) = url {
        check_url(url)?;
    }
    check_secret("username", username)?;
    check_secret("password", password)?;
    check_secret("credential", credential)
}

impl CreateRequest {
    fn validate(&self) -> Result<String, ApiError> {
        let name = check_name(required("name", &self.name)?)?;
        required("url", &self.url)?;
        required("password", &self.password)?;
        check_fields(
            self.url.as_ref(),
            self.username.as_ref(),
            self.password.as_ref(),
            self.credential.as_ref(),
        )?;
        Ok(name)
    }
}

impl UpdateRequest {
    fn validate(&self) -> Result<Option<String>, ApiError> {
        let name = self.name.as_deref().map(check_name).transpose()?;
        check_fields(
            self.url.as_ref(),
            self.username.as_ref().and_then(Option::as_ref),
            self.password.as_ref(),
            self.credential.as_ref().and_then(Option::as_ref),
        )?;
        Ok(name)
    }
}

/// A maintenance host must be a live host (400 naming the field).
fn check_maintenance_host(conn: &mut DbConnection, host_id: Option<&str>) -> Result<(), ApiError> {
    if let Some(id) = host_id {
        live_host(conn, id)
            .map_err(|_| ApiError::validation(format!("maintenance_host_id: no host {id:?}")))?;
    }
    Ok(())
}

fn name_taken(e: diesel::result::Error) -> ApiError {
    match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => ApiError::conflict("name: another repository has this name"),
        other => ApiError::from(other),
    }
}

fn load(conn: &mut DbConnection, id: &str) -> Result<SharedRepositoryDto, ApiError> {
    let repo = repositories::get_shared(conn, id)?
        .ok_or_else(|| ApiError::not_found(&format!("repository {id}")))?;
    let hosts = repositories::hosts_using(conn, id)?;
    Ok(SharedRepositoryDto::new(&repo, hosts))
}

async fn list(
    state: web::Data<AppState>,
    who: Principal,
) -> Result<web::Json<List<SharedRepositoryDto>>, ApiError> {
    who.require(Role::Viewer)?;
    let items = with_conn(&state.pool, |conn| {
        let mut items = Vec::new();
        for repo in repositories::list_shared(conn)? {
            let hosts = repositories::hosts_using(conn, &repo.id)?;
            items.push(SharedRepositoryDto::new(&repo, hosts));
        }
        Ok(items)
    })
    .await?;
    let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
    Ok(web::Json(List { items, total }))
}

async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<web::Json<SharedRepositoryDto>, ApiError> {
    who.require(Role::Viewer)?;
    let id = path.into_inner();
    Ok(web::Json(
        with_conn(&state.pool, move |conn| load(conn, &id)).await?,
    ))
}

async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: Body<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let body = body.into_inner();
    let name = body.validate()?;
    let body = UpdateRequest::from(body);
    let key = state.key.clone();
    let repo = state
        .actors
        .write("creating a shared repository", move |conn| {
            check_maintenance_host(conn, body.maintenance_host_id.clone().flatten().as_deref())?;
            let id = store::new_id();
            let form = sealed_form(&key, &id, Some(name), &body)?;
            let repo = repositories::insert_shared(conn, &id, &form, store::now_ms())
                .map_err(name_taken)?;
            audit(
                conn,
                &who,
                "repository.create",
                Some(&repo.id),
                Some(json!({"name": repo.name, "shared": true})),
            )?;
            Ok::<_, ApiError>(repo)
        })
        .await?;
    Ok(HttpResponse::Created().json(SharedRepositoryDto::new(&repo, Vec::new())))
}

async fn put(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body<UpdateRequest>,
) -> Result<web::Json<SharedRepositoryDto>, ApiError> {
    who.require(Role::Operator)?;
    let id = path.into_inner();
    let body = body.into_inner();
    let name = body.validate()?;
    let key = state.key.clone();
    let dto = state
        .actors
        .write("changing a shared repository", move |conn| {
            repositories::get_shared(conn, &id)?
                .ok_or_else(|| ApiError::not_found(&format!("repository {id}")))?;
            if let Some(host) = &body.maintenance_host_id {
                check_maintenance_host(conn, host.as_deref())?;
            }
            let form = sealed_form(&key, &id, name, &body)?;
            repositories::update_shared(conn, &id, &form, store::now_ms()).map_err(name_taken)?;
            let dto = load(conn, &id)?;
            // Every attached host gets the new settings.
            for host in &dto.host_ids {
                store::schedule_versions::bump(conn, host)?;
            }
            audit(
                conn,
                &who,
                "repository.update",
                Some(&id),
                Some(json!({
                    "name": dto.name,
                    "password_changed": body.password.is_some(),
                    "credential_changed": body.credential.is_some(),
                    "username_changed": body.username.is_some(),
                    "url_changed": body.url.is_some(),
                })),
            )?;
            Ok::<_, ApiError>(dto)
        })
        .await?;
    for host in &dto.host_ids {
        state.actors.push_config(host).await?;
    }
    Ok(web::Json(dto))
}

async fn delete(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let id = path.into_inner();
    state
        .actors
        .write("deleting a shared repository", move |conn| {
            let repo = repositories::get_shared(conn, &id)?
                .ok_or_else(|| ApiError::not_found(&format!("repository {id}")))?;
            // A policy that gives it would silently lose it (the column
            // is ON DELETE SET NULL): refused, naming the policies.
            let givers: Vec<String> = store::policies::list(conn)?
                .into_iter()
                .filter(|p| p.repository_id.as_deref() == Some(id.as_str()))
                .map(|p| format!("{:?}", p.name))
                .collect();
            if !givers.is_empty() {
                return Err(ApiError::conflict(format!(
                    "repository {:?} is given by policies {}; change their repository_id first",
                    repo.name.clone().unwrap_or_default(),
                    givers.join(", ")
                )));
            }
            let hosts = repositories::hosts_using(conn, &id)?;
            if !hosts.is_empty() {
                return Err(ApiError::conflict(format!(
                    "repository {:?} is used by {} host(s): {}; attach them elsewhere first",
                    repo.name.unwrap_or_default(),
                    hosts.len(),
                    hosts.join(", ")
                )));
            }
            repositories::delete(conn, &id)?;
            audit(
                conn,
                &who,
                "repository.delete",
                Some(&id),
                Some(json!({"name": repo.name})),
            )?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An update's `null` user name and credential clear them; absent
    /// keeps them; a wrong type names the field.
    #[test]
    fn update_null_clears() {
        let null: UpdateRequest =
            serde_json::from_str(r#"{"username":null,"credential":null}"#).unwrap();
        assert_eq!(null.username, Some(None));
        assert_eq!(null.credential, Some(None));
        assert!(null.validate().is_ok());
        let absent: UpdateRequest = serde_json::from_str("{}").unwrap();
        assert_eq!((absent.username, absent.credential), (None, None));
        let err = serde_json::from_str::<UpdateRequest>(r#"{"username":5}"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }

    /// Missing or bad fields are a 400 naming the field; Debug hides secrets.
    #[test]
    fn validation() {
        let parse = |text: &str| serde_json::from_str::<CreateRequest>(text).unwrap();
        let field = |text: &str| parse(text).validate().unwrap_err().message;
        assert!(field(r#"{"url":"/r","password":"p"}"#).starts_with("name:"));
        assert!(field(r#"{"name":" ","url":"/r","password":"p"}"#).starts_with("name:"));
        assert!(field(r#"{"name":"n","password":"p"}"#).starts_with("url:"));
        assert!(field(r#"{"name":"n","url":"/r"}"#).starts_with("password:"));
        assert!(field(r#"{"name":"n","url":"/r","password":""}"#).starts_with("password:"));
        let ok = parse(r#"{"name":"n","url":"/r","password":"hunter2","credential":"c-secret"}"#);
        assert_eq!(ok.validate().unwrap(), "n");
        let shown = format!("{ok:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("c-secret"),
            "{shown}"
        );
        assert!(serde_json::from_str::<CreateRequest>(r#"{"password_set":true}"#).is_err());
        let update: UpdateRequest =
            serde_json::from_str(r#"{"maintenance_host_id":null}"#).unwrap();
        assert_eq!(update.maintenance_host_id, Some(None));
    }
}
