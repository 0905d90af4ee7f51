//! Who is calling the REST API, and the login rate limiter.
//!
//! [`Principal`] is an actix-web extractor: a handler that takes one is only
//! reached by an authenticated, enabled user. It accepts either
//! `Authorization: Bearer <api token>` (the `api_tokens` table, looked up by
//! SHA-256; revoked or expired tokens fail) or the browser's session cookie
//! ([`SESSION_COOKIE`]); a cookie session must also send its CSRF token in
//! [`CSRF_HEADER`] on every state-changing request (any method but GET,
//! HEAD and OPTIONS). An API token made with a role acts with the lower of
//! that role and its user's current one. Its "last used" time and a
//! session's sliding expiry are written through the one writer
//! (`Actors::write`). No credentials, an unknown, expired or revoked one, or
//! a disabled user is 401; a missing or wrong CSRF token is 403. Handlers
//! then ask [`Principal::require`] for the role they need (403 `forbidden`).
//!
//! [`Reader`] is the extractor of the handlers that only read (the host
//! and job lists, a host, a job and its log, the UI's dashboard, host
//! list, host page and job page): for a credential that passed a check lately
//! ([`RecentCredentials`]) the check runs beside the handler's reads, and
//! its failure is still the answer.
//!
//! [`LoginLimiter`] bounds failed logins per account *and* address, and per
//! address, in fixed windows, in memory, with a bounded number of tracked
//! keys; the login handler (`api::session`) consults it before verifying a
//! password. Failures for one account from elsewhere never lock its owner
//! out (issue 15 B.1): an address that has not failed for an account under
//! attack is only slowed down.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use crate::auth::{hash_token, Role};
use crate::http::error::{with_conn, ApiError};
use crate::http::AppState;
use crate::store;

/// Name of the browser session cookie (HttpOnly, SameSite=Strict, Secure
/// under TLS); it holds the session token, the database only its SHA-256.
pub const SESSION_COOKIE: &str = "rm_session";

/// Header carrying a cookie session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// The expiry of a session created at `created_at` and used at `now`
/// (Unix ms): `idle` after its last use, but never past `created_at +
/// lifetime` (issue 15 B.11).
pub fn session_expiry(created_at: i64, now: i64, idle: Duration, lifetime: Duration) -> i64 {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    now.saturating_add(ms(idle))
        .min(created_at.saturating_add(ms(lifetime)))
}

/// A session's or API token's "last used" time is written at most this
/// often, so that reads do not each cost a database write.
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// How a request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// `Authorization: Bearer` with the API token of this id.
    ApiToken { token_id: String },
    /// The session cookie of this session (its CSRF token is checked by the
    /// extractor; it is kept to hand back from `GET /me`).
    Session {
        session_id: String,
        csrf_token: String,
    },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    pub method: AuthMethod,
    /// The client's IP address (the TCP peer), for the audit log.
    pub source_addr: Option<String>,
}

impl Principal {
    /// `Ok` if the caller's role is at least `needed`, else 403 `forbidden`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {needed} role; {} is {}",
                self.username, self.role
            )))
        }
    }
}

/// The client's address as recorded in the audit log and used as the rate
/// limiter's key: the TCP peer's IP. Forwarding headers are not trusted,
/// since any client can set them.
pub fn client_addr(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|addr| addr.ip().to_string())
}

/// Whether a method changes state (and so needs the CSRF token).
fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the CSRF token sent matches the session's, compared with
/// `subtle` in time that depends only on the lengths.
fn csrf_matches(sent: &str, expected: &str) -> bool {
    sent.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// What the request presented, read synchronously from its headers: the
/// credential as its SHA-256 (all the database and [`RecentCredentials`]
/// ever see).
enum Presented {
    Bearer { hash: String },
    Cookie { hash: String, csrf: Option<String> },
}

impl Presented {
    fn hash(&self) -> &str {
        match self {
            Presented::Bearer { hash } | Presented::Cookie { hash, .. } => hash,
        }
    }
}

fn presented(req: &HttpRequest) -> Result<Presented, ApiError> {
    if let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let (scheme, token) = text
            .split_once(' ')
            .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <token>"))?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(ApiError::unauthorized(
                "expected Authorization: Bearer <token>",
            ));
        }
        return Ok(Presented::Bearer {
            hash: hash_token(token),
        });
    }
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        let csrf = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        return Ok(Presented::Cookie {
            hash: hash_token(cookie.value()),
            csrf,
        });
    }
    Err(ApiError::unauthorized(
        "authentication required: send Authorization: Bearer <api token> or log in",
    ))
}

/// Looks the credential presented up (and, at most once a minute,
/// records its use).
async fn lookup(
    state: web::Data<AppState>,
    presented: Presented,
    state_changing: bool,
    source_addr: Option<String>,
) -> Result<Principal, ApiError> {
    let now = store::now_ms();
    match presented {
        Presented::Bearer { hash } => {
            let (principal, touch) = with_conn(&state.pool, move |conn| {
                let (api_token, user) = store::api_tokens::find_valid(conn, &hash, now)?
                    .ok_or_else(|| {
                        ApiError::unauthorized("invalid, expired or revoked API token")
                    })?;
                let touch = api_token
                    .last_used_at
                    .is_none_or(|at| now - at >= TOUCH_INTERVAL_MS);
                // A token acts with its own role, never above its user's.
                let role = api_token.role.map_or(user.role, |cap| user.role.min(cap));
                let principal = Principal {
                    user_id: user.id,
                    username: user.username,
                    role,
                    method: AuthMethod::ApiToken {
                        token_id: api_token.id.clone(),
                    },
                    source_addr,
                };
                Ok((principal, touch.then_some(api_token.id)))
            })
            .await?;
            if let Some(token_id) = touch {
                state
                    .actors
                    .write("recording an API token's use", move |conn| {
                        store::api_tokens::touch(conn, &token_id, now).map_err(ApiError::from)
                    })
                    .await?;
            }
            Ok(principal)
        }
        Presented::Cookie { hash, csrf } => {
            let (idle, lifetime) = (state.config.session_idle, state.config.session_lifetime);
            let lifetime_ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
            let (principal, touch) = with_conn(&state.pool, move |conn| {
                let (session, user) = store::sessions::find_valid(conn, &hash, now)?
                    .filter(|(session, _)| now.saturating_sub(session.created_at) < lifetime_ms)
                    .ok_or_else(|| ApiError::unauthorized("session expired or invalid"))?;
                if state_changing {
                    let sent = csrf.as_deref().unwrap_or("");
                    if !csrf_matches(sent, &session.csrf_token) {
                        return Err(ApiError::new(
                            StatusCode::FORBIDDEN,
                            "csrf_failed",
                            format!("missing or wrong {CSRF_HEADER} header"),
                        ));
                    }
                }
                let touch = now - session.last_seen_at >= TOUCH_INTERVAL_MS;
                let expires_at = session_expiry(session.created_at, now, idle, lifetime);
                let principal = Principal {
                    user_id: user.id,
                    username: user.username,
                    role: user.role,
                    method: AuthMethod::Session {
                        session_id: session.id.clone(),
                        csrf_token: session.csrf_token,
                    },
                    source_addr,
                };
                Ok((principal, touch.then_some((session.id, expires_at))))
            })
            .await?;
            if let Some((session_id, expires_at)) = touch {
                state
                    .actors
                    .write("sliding a session", move |conn| {
                        store::sessions::touch(conn, &session_id, now, Some(expires_at))
                            .map_err(ApiError::from)
                    })
                    .await?;
            }
            Ok(principal)
        }
    }
}

/// A request's credential and what its check needs, read synchronously
/// from the request.
struct Asked {
    state: web::Data<AppState>,
    presented: Presented,
    state_changing: bool,
    source_addr: Option<String>,
}

impl Asked {
    fn of(req: &HttpRequest) -> Result<Asked, ApiError> {
        Ok(Asked {
            state: req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::internal("AppState is not registered"))?,
            presented: presented(req)?,
            state_changing: is_state_changing(req.method()),
            source_addr: client_addr(req),
        })
    }

    /// Whether the request only reads and its credential passed a check
    /// lately ([`RecentCredentials`]).
    fn recent(&self) -> bool {
        !self.state_changing
            && self
                .state
                .recent_credentials
                .contains(self.presented.hash(), Instant::now())
    }

    /// Checks the credential and remembers the outcome in
    /// [`RecentCredentials`]: a pass as recent, a 401 as no longer so.
    async fn check(self) -> Result<Principal, ApiError> {
        let hash = self.presented.hash().to_owned();
        let recent = Arc::clone(&self.state.recent_credentials);
        let outcome = lookup(
            self.state,
            self.presented,
            self.state_changing,
            self.source_addr,
        )
        .await;
        match &outcome {
            Ok(_) => recent.passed(hash, Instant::now()),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => recent.failed(&hash),
            Err(_) => {}
        }
        outcome
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Principal, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let asked = Asked::of(req);
        Box::pin(async move { asked?.check().await })
    }
}

/// How long a credential that passed a check counts as recent for
/// [`Reader`].
pub const RECENTLY_VALID: Duration = Duration::from_secs(10 * 60);
/// Credentials remembered at most; past it a new one is not remembered
/// (its reads simply wait for its check, as a first request's do).
pub const MAX_RECENT_CREDENTIALS: usize = 10_000;

/// The credentials (their SHA-256) that passed a check within
/// [`RECENTLY_VALID`], in memory. It grants nothing: every request is
/// still checked against the database. It only decides whether a
/// [`Reader`]'s reads may start while that check runs. A credential that
/// fails a check with 401 (revoked, expired, its user disabled) is
/// forgotten at once, so a revoked token can cost the server at most one
/// request's reads, never read a byte.
#[derive(Debug, Default)]
pub struct RecentCredentials {
    seen: Mutex<HashMap<String, Instant>>,
}

impl RecentCredentials {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic while holding it cannot leave the map inconsistent.
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `hash` passed a check within [`RECENTLY_VALID`] of `now`.
    pub fn contains(&self, hash: &str, now: Instant) -> bool {
        self.lock()
            .get(hash)
            .is_some_and(|at| now.duration_since(*at) < RECENTLY_VALID)
    }

    /// `hash` passed a check at `now`.
    pub fn passed(&self, hash: String, now: Instant) {
        let mut seen = self.lock();
        if seen.len() >= MAX_RECENT_CREDENTIALS && !seen.contains_key(&hash) {
            seen.retain(|_, at| now.duration_since(*at) < RECENTLY_VALID);
            if seen.len() >= MAX_RECENT_CREDENTIALS {
                return;
            }
        }
        seen.insert(hash, now);
    }

    /// `hash` failed a check: its next reads wait for their check.
    pub fn failed(&self, hash: &str) {
        self.lock().remove(hash);
    }
}

/// The caller of a request that only reads, taken by a handler instead
/// of a [`Principal`] so that the caller's check need not come first.
///
/// On PostgreSQL every statement in a chain is a round trip, and the
/// credential's lookup was the first of every request's chain: about
/// 0.1 ms of a sub-millisecond page (issue 19, BENCHMARKS.md). When the
/// request presents a credential that passed a check lately
/// ([`RecentCredentials`]) and does not change state, the extractor hands
/// the check over still running and [`Reader::alongside`] runs it next to
/// the handler's reads. Nothing is answered before it has passed, and its
/// failure (401, 403) is the answer whatever the reads found, so a caller
/// learns nothing from a request it was not allowed to make. Any other
/// credential (a first request, a guessed token) is checked before the
/// handler runs, as a [`Principal`] is: an unknown caller cannot make the
/// server read on its behalf.
pub struct Reader {
    check: Pin<Box<dyn Future<Output = Result<Principal, ApiError>>>>,
}

impl Reader {
    /// Runs `reads` alongside the caller's check; the caller and what was
    /// read once both are done. The check's failure wins over the reads'.
    pub async fn alongside<T, E>(
        self,
        reads: impl Future<Output = Result<T, E>>,
    ) -> Result<(Principal, T), E>
    where
        E: From<ApiError>,
    {
        let (who, data) = self.join(reads).await;
        let who = who?;
        Ok((who, data?))
    }

    /// Runs `reads` alongside the caller's check; both outcomes.
    pub async fn join<T>(self, reads: impl Future<Output = T>) -> (Result<Principal, ApiError>, T) {
        futures_util::future::join(self.check, reads).await
    }
}

impl FromRequest for Reader {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Reader, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let asked = Asked::of(req);
        Box::pin(async move {
            let asked = asked?;
            if asked.recent() {
                return Ok(Reader {
                    check: Box::pin(asked.check()),
                });
            }
            let who = asked.check().await?;
            Ok(Reader {
                check: Box::pin(std::future::ready(Ok(who))),
            })
        })
    }
}

// ---------------------------------------------------------------------------
// Login rate limiting
// ---------------------------------------------------------------------------

/// Failed logins allowed per account from one address in one [`LOGIN_WINDOW`].
pub const ACCOUNT_MAX_FAILURES: u32 = 5;
/// Failed logins for one account (from anywhere) in a window after which
/// every attempt on it is slowed down by [`SLOWED_LOGIN_DELAY`], not refused.
pub const ACCOUNT_SLOW_AFTER: u32 = 5;
/// How long an attempt on an account under attack waits before its answer.
pub const SLOWED_LOGIN_DELAY: Duration = Duration::from_secs(1);
/// Failed logins allowed per client address in one [`LOGIN_WINDOW`]
/// (higher than per account: several people may share a NAT address).
pub const ADDRESS_MAX_FAILURES: u32 = 30;
/// The window failures are counted in; it starts at the first failure.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys (accounts, addresses) tracked per kind; beyond it the expired
/// windows are dropped, then the oldest, so memory stays bounded.
pub const MAX_TRACKED_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

/// Fixed-window counters for one kind of key, bounded in size.
#[derive(Debug)]
struct Counters {
    max: u32,
    windows: HashMap<String, Window>,
}

impl Counters {
    fn new(max: u32) -> Self {
        Counters {
            max,
            windows: HashMap::new(),
        }
    }

    /// Failures counted for `key` in its current window at `now`.
    fn failures(&self, key: &str, now: Instant) -> u32 {
        self.windows
            .get(key)
            .filter(|w| now.duration_since(w.started) < LOGIN_WINDOW)
            .map_or(0, |w| w.count)
    }

    /// The remaining wait if `key` has used up its window at `now`.
    fn blocked_for(&self, key: &str, now: Instant) -> Option<Duration> {
        let window = self.windows.get(key)?;
        let ends = window.started + LOGIN_WINDOW;
        (window.count >= self.max && now < ends).then(|| ends - now)
    }

    fn count(&mut self, key: &str, now: Instant) {
        if !self.windows.contains_key(key) && self.windows.len() >= MAX_TRACKED_KEYS {
            self.evict(now);
        }
        let window = self.windows.entry(key.to_owned()).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(window.started) >= LOGIN_WINDOW {
            *window = Window {
                started: now,
                count: 0,
            };
        }
        window.count = window.count.saturating_add(1);
    }

    fn uncount(&mut self, key: &str) {
        if let Some(window) = self.windows.get_mut(key) {
            window.count = window.count.saturating_sub(1);
            if window.count == 0 {
                self.windows.remove(key);
            }
        }
    }

    fn clear(&mut self, key: &str) {
        self.windows.remove(key);
    }

    fn evict(&mut self, now: Instant) {
        self.windows
            .retain(|_, w| now.duration_since(w.started) < LOGIN_WINDOW);
        while self.windows.len() >= MAX_TRACKED_KEYS {
            let oldest = self
                .windows
                .iter()
                .min_by_key(|(_, w)| w.started)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(key) => {
                    self.windows.remove(&key);
                }
                None => break,
            }
        }
    }
}

#[derive(Debug)]
struct LimiterState {
    /// Per account and address (`account\0address`): refused at the limit.
    pairs: Counters,
    /// Per address, across accounts: refused at the limit.
    addresses: Counters,
    /// Per account, across addresses: never refused, only slowed down.
    accounts: Counters,
}

/// Counts login attempts per account and address, per address, and per
/// account. An attempt is counted when it starts ([`LoginLimiter::begin`]),
/// so concurrent guesses cannot slip past the limit; a success gives its
/// count back ([`LoginLimiter::succeeded`]). Refusals are per account *and*
/// address and per address, so nobody elsewhere can lock an account's
/// owner out; an account with many failures from anywhere only makes each
/// attempt on it wait [`SLOWED_LOGIN_DELAY`]. One per server, shared by
/// every worker.
#[derive(Debug)]
pub struct LoginLimiter {
    state: Mutex<LimiterState>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new()
    }
}

/// An admitted attempt: how long to wait before answering it (an account
/// under attack slows every attempt on it down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    pub delay: Option<Duration>,
}

/// A refused attempt: how long until the caller may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after: Duration,
}

impl LoginLimiter {
    /// A limiter with [`ACCOUNT_MAX_FAILURES`] and [`ADDRESS_MAX_FAILURES`].
    pub fn new() -> Self {
        Self::with_limits(ACCOUNT_MAX_FAILURES, ADDRESS_MAX_FAILURES)
    }

    /// A limiter with other limits (tests).
    pub fn with_limits(per_account: u32, per_address: u32) -> Self {
        LoginLimiter {
            state: Mutex::new(LimiterState {
                pairs: Counters::new(per_account),
                addresses: Counters::new(per_address),
                accounts: Counters::new(u32::MAX),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        // A panic while holding the lock cannot leave the counters
        // inconsistent (each update is a single assignment), so a poisoned
        // lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts an attempt for `account` (compared case-insensitively) from
    /// `addr`: refused if this account from this address, or this address,
    /// has used up its window; else counted, and slowed down when the
    /// account has [`ACCOUNT_SLOW_AFTER`] failures from anywhere.
    pub fn begin(&self, account: &str, addr: &str, now: Instant) -> Result<Admitted, RateLimited> {
        let account = account.to_lowercase();
        let pair = format!("{account}\0{addr}");
        let mut state = self.lock();
        let wait = [
            state.pairs.blocked_for(&pair, now),
            state.addresses.blocked_for(addr, now),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(retry_after) = wait {
            return Err(RateLimited { retry_after });
        }
        let slowed = state.accounts.failures(&account, now) >= ACCOUNT_SLOW_AFTER;
        state.pairs.count(&pair, now);
        state.addresses.count(addr, now);
        state.accounts.count(&account, now);
        Ok(Admitted {
            delay: slowed.then_some(SLOWED_LOGIN_DELAY),
        })
    }

    /// The attempt begun for `account` from `addr` succeeded: the failures
    /// of this account from this address are forgiven, and the address and
    /// the account get this attempt back.
    pub fn succeeded(&self, account: &str, addr: &str) {
        let account = account.to_lowercase();
        let mut state = self.lock();
        state.pairs.clear(&format!("{account}\0{addr}"));
        state.addresses.uncount(addr);
        state.accounts.uncount(&account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sixth failure for one account from one address in a window is
    /// refused, and the wait is the window's rest.
    #[test]
    fn account_limit_then_window_expires() {
        let limiter = LoginLimiter::with_limits(5, 100);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.begin("alice", "10.0.0.1", t0).is_ok());
        }
        let refused = limiter
            .begin("ALICE", "10.0.0.1", t0 + Duration::from_secs(60))
            .unwrap_err();
        assert_eq!(refused.retry_after, LOGIN_WINDOW - Duration::from_secs(60));
        // Another account from the same address is not affected.
        assert!(limiter.begin("bob", "10.0.0.1", t0).is_ok());
        // After the window the account may try again.
        assert!(limiter
            .begin("alice", "10.0.0.1", t0 + LOGIN_WINDOW)
            .is_ok());
    }

    /// Failures from elsewhere never lock the owner out (issue 15 B.1): an
    /// address that has not failed is admitted, slowed down while the
    /// account is under attack; the attacker's address is refused.
    #[test]
    fn attack_from_elsewhere_slows_but_never_locks_out() {
        let limiter = LoginLimiter::with_limits(5, 30);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.begin("admin", "203.0.113.9", t0).is_ok());
        }
        assert!(limiter.begin("admin", "203.0.113.9", t0).is_err());
        let owner = limiter.begin("admin", "192.0.2.10", t0).unwrap();
        assert_eq!(owner.delay, Some(SLOWED_LOGIN_DELAY));
        limiter.succeeded("admin", "192.0.2.10");
        // An account nobody attacks is not slowed down.
        assert_eq!(limiter.begin("bob", "192.0.2.10", t0).unwrap().delay, None);
    }

    /// One address guessing many accounts is refused after its own limit.
    #[test]
    fn address_limit_across_accounts() {
        let limiter = LoginLimiter::with_limits(5, 3);
        let t0 = Instant::now();
        for name in ["a", "b", "c"] {
            assert!(limiter.begin(name, "192.0.2.1", t0).is_ok());
        }
        assert!(limiter.begin("d", "192.0.2.1", t0).is_err());
        assert!(limiter.begin("d", "192.0.2.2", t0).is_ok());
    }

    /// A success clears the account's failures and does not count against the address.
    #[test]
    fn success_forgives() {
        let limiter = LoginLimiter::with_limits(2, 2);
        let t0 = Instant::now();
        assert!(limiter.begin("alice", "192.0.2.1", t0).is_ok());
        assert!(limiter.begin("alice", "192.0.2.1", t0).is_ok());
        limiter.succeeded("alice", "192.0.2.1");
        assert!(limiter.begin("alice", "192.0.2.1", t0).is_ok());
        limiter.succeeded("alice", "192.0.2.1");
        // One failure (the first attempt) still counts against the address.
        assert!(limiter.begin("Alice", "192.0.2.1", t0).is_ok());
        assert!(limiter.begin("bob", "192.0.2.1", t0).is_err());
    }

    /// The number of tracked keys stays bounded under a flood of distinct accounts.
    #[test]
    fn tracked_keys_are_bounded() {
        let limiter = LoginLimiter::with_limits(5, u32::MAX);
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED_KEYS + 50) {
            let at = t0 + Duration::from_millis(i as u64);
            assert!(limiter.begin(&format!("user{i}"), "192.0.2.1", at).is_ok());
        }
        let state = limiter.lock();
        assert!(state.accounts.windows.len() <= MAX_TRACKED_KEYS);
        assert!(state.pairs.windows.len() <= MAX_TRACKED_KEYS);
        // The newest account is still tracked; the oldest was evicted.
        assert!(state
            .accounts
            .windows
            .contains_key(&format!("user{}", MAX_TRACKED_KEYS + 49)));
        assert!(!state.accounts.windows.contains_key("user0"));
    }

    /// A CSRF token matches only when identical: one differing byte, a
    /// prefix or an empty header is refused.
    #[test]
    fn csrf_token_comparison() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("ab", "abc"));
        assert!(!csrf_matches("", "abc"));
    }

    /// A session slides by the idle time but never past its lifetime (B.11).
    #[test]
    fn session_expiry_is_capped_by_the_lifetime() {
        let hour = Duration::from_secs(3600);
        let (idle, lifetime) = (12 * hour, 7 * 24 * hour);
        let h = 3_600_000_i64;
        assert_eq!(session_expiry(0, 0, idle, lifetime), 12 * h);
        assert_eq!(session_expiry(0, 100 * h, idle, lifetime), 112 * h);
        assert_eq!(session_expiry(0, 160 * h, idle, lifetime), 168 * h);
        assert_eq!(session_expiry(0, 200 * h, idle, lifetime), 168 * h);
    }

    /// Only GET, HEAD and OPTIONS are safe methods.
    #[test]
    fn state_changing_methods() {
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(is_state_changing(&m), "{m}");
        }
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!is_state_changing(&m), "{m}");
        }
    }

    /// A credential is recent from its pass for [`RECENTLY_VALID`], and
    /// no longer once it fails; passing again renews it.
    #[test]
    fn recent_credentials_expire_and_are_forgotten_on_failure() {
        let recent = RecentCredentials::default();
        let t0 = Instant::now();
        assert!(!recent.contains("a", t0), "never seen");
        recent.passed("a".to_owned(), t0);
        assert!(recent.contains("a", t0));
        assert!(recent.contains("a", t0 + RECENTLY_VALID - Duration::from_secs(1)));
        assert!(!recent.contains("a", t0 + RECENTLY_VALID), "expired");
        recent.passed("a".to_owned(), t0 + RECENTLY_VALID);
        assert!(recent.contains("a", t0 + RECENTLY_VALID), "renewed");
        recent.failed("a");
        assert!(!recent.contains("a", t0 + RECENTLY_VALID), "forgotten");
    }

    /// Past [`MAX_RECENT_CREDENTIALS`] expired entries make room; while all
    /// are current, a new credential is not remembered (and the old stay).
    #[test]
    fn recent_credentials_are_bounded() {
        let recent = RecentCredentials::default();
        let t0 = Instant::now();
        for i in 0..MAX_RECENT_CREDENTIALS {
            recent.passed(format!("old-{i}"), t0);
        }
        recent.passed("new".to_owned(), t0 + Duration::from_secs(1));
        assert!(!recent.contains("new", t0 + Duration::from_secs(1)), "full");
        assert!(recent.contains("old-0", t0 + Duration::from_secs(1)));
        recent.passed("old-1".to_owned(), t0 + RECENTLY_VALID);
        let later = t0 + RECENTLY_VALID + Duration::from_secs(1);
        recent.passed("new".to_owned(), later);
        assert!(recent.contains("new", later), "the expired made room");
        assert!(recent.contains("old-1", later), "renewed, kept");
        assert_eq!(recent.lock().len(), 2);
    }
}
