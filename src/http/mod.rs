//! actix-web routes: health, the REST API under `/api/v1`, the agent
//! WebSocket upgrade, metrics and the web UI (`ui`).

pub mod agent;
pub mod api;
pub mod auth;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod sse;
pub mod state;
pub mod ui;

pub use state::AppState;

use actix_web::{web, HttpResponse};

/// `Strict-Transport-Security` sent on every answer of a TLS server: one
/// year of HTTPS only for this host.
pub const HSTS: &str = "max-age=31536000";

/// Largest JSON body the REST API accepts (larger: 413 `payload_too_large`).
pub const API_JSON_LIMIT: usize = 1024 * 1024;

/// Registers every route of the server. The API's JSON 404 for unknown
/// `/api/v1` paths comes after every API route; paths outside `/api/v1`
/// are left to the UI (and the app's default service).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics::metrics));
    api::routes(cfg);
    ui::routes(cfg);
    api::unknown_routes(cfg);
}

/// Liveness: the process answers.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Readiness: the database answers a query.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.clone();
    let result = web::block(move || -> Result<(), String> {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        crate::store::ping(&mut conn).map_err(|e| e.to_string())
    })
    .await;
    match result {
        Ok(Ok(())) => HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("database unavailable\n")
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("database unavailable\n")
        }
    }
}
