//! `GET /version`: what this server is (its version, the git commit it was
//! built from, the agent protocol it speaks and the database schema it
//! expects), the facts `restic-manager --version` prints, so an operator
//! can tell what runs where. The UI footer shows the same
//! (`ui::layout`).

use actix_web::web;
use serde::Serialize;

use super::table::Endpoint;
use crate::http::auth::Principal;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::get("/version", |r| r.to(version))
        .summary("This server's version, git commit, agent protocol and database schema")
        .ok(200, "Version")]
}

/// `GET /version` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Version)]
pub(super) struct VersionDto {
    /// The server's version (`0.1.0`).
    version: &'static str,
    /// The git commit it was built from (a short hash), or `unknown`.
    commit: &'static str,
    /// The agent ⇄ server protocol version it speaks (PROTOCOL.md).
    protocol: u32,
    /// The newest database migration it carries (`2026-12-06-000001`).
    schema: String,
}

impl VersionDto {
    /// This build's facts.
    fn current() -> Self {
        VersionDto {
            version: crate::cli::VERSION,
            commit: crate::cli::GIT_COMMIT,
            protocol: crate::protocol::PROTOCOL_VERSION,
            schema: crate::store::binary_schema(),
        }
    }
}

async fn version(_who: Principal) -> web::Json<VersionDto> {
    web::Json(VersionDto::current())
}
