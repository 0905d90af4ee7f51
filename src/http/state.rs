//! [`AppState`]: what every HTTP handler is handed (`web::Data<AppState>`).
//! The app wiring (`server.rs`) builds it once and gives each worker a clone.

use std::sync::Arc;

use crate::actors::Actors;
use crate::config::ServerConfig;
use crate::crypto::SecretKey;
use crate::store::Pool;

/// Shared state of the HTTP handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Connection pool; readers use it inside `web::block`.
    pub pool: Pool,
    /// Key that seals repository secrets at rest.
    pub key: Arc<SecretKey>,
    /// The resolved configuration.
    pub config: Arc<ServerConfig>,
    /// Handles to the actors (sessions, scheduler, persistence, events).
    /// Shared by the sessions ([`Actors::new_session`]).
    pub actors: Arc<Actors>,
    /// The credentials that passed a check lately: whose reads may run
    /// alongside their check ([`crate::http::auth::Reader`]).
    pub recent_credentials: Arc<crate::http::auth::RecentCredentials>,
}
