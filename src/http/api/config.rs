//! Configuration as code over the API (issue 12 §6):
//! `GET /config/export` (operator: the TOML file of the policies, shared
//! repositories and host labels; it names where secrets come from but
//! never holds one) and `POST /config/apply?dry_run=true|false` (admin:
//! a TOML body, answered with the change list).
//!
//! The file is read and its secret references resolved in `web::block`
//! (`password_env` in the server's environment, `password_file` on the
//! server's disk); the plan and the writes run on the one writer in one
//! transaction, with the `config.apply` audit row; then `config.update` +
//! `schedule.set` go to the affected hosts' sessions, as after a policy
//! PUT. See `crate::config_as_code`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;

use super::table::Endpoint;
use crate::auth::Role;
use crate::config_as_code::{self as cac, ApplyError, ApplyOptions, Change, FileError};
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::AppState;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/config/export", |r| r.to(export))
            .summary("The policies, shared repositories and host labels as a TOML configuration file")
            .describe(
                "Content type application/toml. Secrets are never written: a repository's stored \
                 password and credential appear as comments; apply keeps them.",
            )
            .role(Role::Operator)
            .stream(200, "application/toml", "The configuration file."),
        Endpoint::post("/config/apply", |r| r.to(apply))
            .summary("Make the policies, shared repositories and host labels what a TOML file says, in one transaction")
            .describe(
                "The body is the file (TOML, as GET /config/export writes it). Policies and shared \
                 repositories the file does not name are deleted; the labels of the hosts it names \
                 are set. password_env / credential_env are read from the server's environment, \
                 password_file / credential_file from the server's disk. Errors name the line.",
            )
            .role(Role::Admin)
            .query_enum(
                "dry_run",
                vec!["true", "false"],
                "true: check the file and answer the changes without making them (default false).",
            )
            .ok(200, "ConfigApplyResult")
            .error(400, "The file is invalid: the message names the line.")
            .error(409, "A repository the file leaves out is still used by hosts, or a host would get two source groups of one name.")
            .error(413, "The file is larger than 16 MiB."),
    ]
}

/// The answer of an apply.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ConfigApplyResult)]
pub struct ApplyDto {
    /// What changed (or, for a dry run, would change); empty: nothing.
    #[schema(value_type = Vec<ConfigChange>)]
    changes: Vec<Change>,
    /// How many hosts' configuration changed (they get `schedule.set`).
    hosts_affected: usize,
}

/// The schemas of this module's answers.
pub(super) fn schemas() -> Vec<(String, Value)> {
    use super::openapi::{answer, derived};
    [derived::<Change>(), derived::<ApplyDto>()]
        .into_iter()
        .map(|(n, s)| (n.to_owned(), answer(s)))
        .collect()
}

impl From<FileError> for ApiError {
    fn from(e: FileError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.code, e.to_string())
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::File(f) => f.into(),
            ApplyError::Conflict(m) => ApiError::conflict(m),
            ApplyError::Db(e) => e.into(),
            ApplyError::Crypto(m) => ApiError::internal(m),
            ApplyError::DryRun(_) => ApiError::internal("a dry run escaped its rollback"),
        }
    }
}

async fn export(state: web::Data<AppState>, who: Principal) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let text = with_conn(&state.pool, |conn| {
        cac::export(conn).map_err(|e| match e {
            cac::ExportError::Db(e) => ApiError::from(e),
            other => ApiError::internal(other),
        })
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/toml")
        .body(text))
}

/// `dry_run` from the query string: `true`, `false` or absent (false).
fn dry_run(query: &str) -> Result<bool, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| ApiError::bad_request(format!("query: {e}")))?
        .into_inner();
    let mut dry = false;
    for (key, value) in pairs {
        if key == "dry_run" {
            dry = match value.as_str() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(ApiError::validation(format!(
                        "dry_run: expected true or false, got {other:?}"
                    )))
                }
            };
        }
    }
    Ok(dry)
}

/// The body as text, at most [`cac::MAX_FILE_BYTES`].
async fn read_body(mut payload: web::Payload) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
        if bytes.len() + chunk.len() > cac::MAX_FILE_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "body: the file is larger than {} bytes",
                    cac::MAX_FILE_BYTES
                ),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ApiError::validation("body: the file is not UTF-8"))
}

async fn apply(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<web::Json<ApplyDto>, ApiError> {
    who.require(Role::Admin)?;
    let dry = dry_run(req.query_string())?;
    let text = read_body(payload).await?;
    // Secret files are read here, off the event loop and off the writer.
    let desired = web::block(move || cac::parse(&text, &cac::process_env))
        .await
        .map_err(ApiError::internal)??;
    let key = state.key.clone();
    let applied = state
        .actors
        .write("applying a configuration file", move |conn| {
            let options = ApplyOptions {
                dry_run: dry,
                actor: &who.username,
                source_addr: who.source_addr.as_deref(),
            };
            cac::apply(conn, &desired, &key, &options).map_err(ApiError::from)
        })
        .await?;
    let n = applied.hosts_affected.len();
    if !dry {
        tracing::info!(
            changes = applied.changes.len(),
            hosts_affected = n,
            "configuration file applied"
        );
        state.actors.push_configs(applied.hosts_affected);
    }
    Ok(web::Json(ApplyDto {
        changes: applied.changes,
        hosts_affected: n,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dry_run` is true, false or absent; anything else names it.
    #[test]
    fn dry_run_parameter() {
        assert!(!dry_run("").unwrap());
        assert!(dry_run("dry_run=true").unwrap());
        assert!(!dry_run("dry_run=false").unwrap());
        let e = dry_run("dry_run=yes").unwrap_err();
        assert!(e.message.starts_with("dry_run:"), "{}", e.message);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
