//! The agent's two HTTP routes: enrolment (`POST /api/v1/agent/enroll`)
//! and the WebSocket upgrade (`GET /api/v1/agent/ws`).
//!
//! Enrolment spends a one-time enrolment token and creates the host in one
//! transaction, answering the new agent token once; only its SHA-256 is
//! stored. The upgrade authenticates `Authorization: Bearer <agent token>`
//! before upgrading (a missing, unknown or revoked token gets a 401 JSON
//! error and no WebSocket), then hands the socket to a
//! [`HostSession`](crate::actors::host_session::HostSession) with the
//! configured frame size limit. This file and the session are the only
//! users of `actix_web_actors`.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;

use super::api::table::{Access, Endpoint};
use super::api::Body;
use super::error::{with_conn, ApiError};
use crate::auth;
use crate::protocol::{self, EnrollRequest, EnrollResponse};
use crate::server::AppState;
use crate::store::{self, audit, hosts, models};

/// Longest hostname accepted at enrolment.
const MAX_HOSTNAME_LEN: usize = 253;

/// The agent routes, for the API's route table (`api::endpoints`).
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::post("/agent/enroll", |r| r.to(enroll))
            .summary("Enrol a host with a one-time enrolment token")
            .describe("Answers the agent token once; the server keeps its SHA-256.")
            .access(Access::Public)
            .body("EnrollRequest")
            .ok(200, "EnrollResponse")
            .error(
                401,
                "The enrolment token is unknown, used, revoked or expired.",
            ),
        Endpoint::get("/agent/ws", |r| r.to(upgrade))
            .summary("The agent's WebSocket (PROTOCOL.md), with its agent token")
            .access(Access::Agent)
            .empty(101, "Switching to the WebSocket protocol.")
            .error(401, "The agent token is missing, unknown or revoked."),
    ]
}

fn validate(body: &EnrollRequest) -> Result<(), ApiError> {
    let hostname = body.hostname.trim();
    if hostname.is_empty() || hostname.len() > MAX_HOSTNAME_LEN {
        return Err(ApiError::validation(format!(
            "hostname must be 1 to {MAX_HOSTNAME_LEN} characters"
        )));
    }
    if hostname.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "hostname must not contain control characters",
        ));
    }
    if ![protocol::OS_LINUX, protocol::OS_WINDOWS].contains(&body.os.as_str()) {
        return Err(ApiError::validation(format!(
            "os must be \"{}\" or \"{}\"",
            protocol::OS_LINUX,
            protocol::OS_WINDOWS
        )));
    }
    if ![protocol::ARCH_AMD64, protocol::ARCH_ARM64].contains(&body.arch.as_str()) {
        return Err(ApiError::validation(format!(
            "arch must be \"{}\" or \"{}\"",
            protocol::ARCH_AMD64,
            protocol::ARCH_ARM64
        )));
    }
    Ok(())
}

/// `POST /api/v1/agent/enroll`: enrolment token → host id + agent token.
async fn enroll(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Body<EnrollRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    validate(&body)?;
    let agent_token = auth::generate_token().map_err(ApiError::internal)?;
    let now = store::now_ms();
    let new = models::NewHost {
        id: store::new_id(),
        hostname: body.hostname.trim().to_owned(),
        display_name: None,
        labels: "{}".to_owned(),
        os: body.os.clone(),
        arch: body.arch.clone(),
        agent_version: None,
        restic_version: None,
        boot_time: None,
        capabilities: "[]".to_owned(),
        agent_token_hash: auth::hash_token(&agent_token),
        enrolled_at: now,
        updated_at: now,
    };
    let token_hash = auth::hash_token(&body.token);
    let source_addr = req.peer_addr().map(|a| a.ip().to_string());
    let host = state
        .actors
        .write("enrolling a host", move |conn| {
            let Some(host) = hosts::enroll_with_token(conn, &token_hash, &new, now)? else {
                return Ok(None);
            };
            audit::insert(
            conn,
            &models::NewAuditEntry {
                id: store::new_id(),
                at: now,
                actor: format!("agent:{}", host.id),
                action: "host.enroll".to_owned(),
                target: Some(host.id.clone()),
                detail: Some(
                    serde_json::json!({"hostname": host.hostname, "os": host.os, "arch": host.arch})
                        .to_string(),
                ),
                source_addr,
            },
        )?;
            Ok::<_, ApiError>(Some(host))
        })
        .await?;
    let Some(host) = host else {
        tracing::info!(addr = ?req.peer_addr(), "enrolment with an unknown, used or expired token");
        return Err(ApiError::unauthorized(
            "the enrolment token is unknown, already used or expired",
        ));
    };
    tracing::info!(host_id = %host.id, hostname = %host.hostname, "host enrolled");
    Ok(HttpResponse::Ok().json(EnrollResponse {
        host_id: host.id,
        agent_token,
    }))
}

/// The bearer token of a request, if it has one.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// `GET /api/v1/agent/ws`: authenticate, then upgrade to a host session.
async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let Some(token) = bearer(&req) else {
        return Err(
            ApiError::unauthorized("an agent token is required (Authorization: Bearer …)").into(),
        );
    };
    let token_hash = auth::hash_token(token);
    let host = with_conn(&state.pool, move |conn| {
        Ok(hosts::find_by_agent_token(conn, &token_hash)?)
    })
    .await?;
    let Some(host) = host else {
        tracing::info!(addr = ?req.peer_addr(), "WebSocket upgrade with an unknown or revoked agent token");
        return Err(ApiError::unauthorized("the agent token is unknown or revoked").into());
    };
    let actors = &state.actors;
    ws::WsResponseBuilder::new(actors.new_session(host.id), &req, stream)
        .frame_size(actors.max_frame_bytes())
        .start()
}
