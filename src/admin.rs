//! The admin commands behind the CLI (`user add`, `token create`,
//! `api-token create`, `migrate`) and the first-start bootstrap of the
//! `admin` account. Each is a plain blocking function over the pool so the
//! binary stays thin and tests can call them directly.

use std::time::Duration;

use anyhow::{bail, Context};

use crate::auth::{self, Role};
use crate::config::ServerConfig;
use crate::store::{self, models, Pool};

/// Environment variable that sets the first admin's password.
pub const ADMIN_PASSWORD_ENV: &str = "RESTIC_MANAGER_ADMIN_PASSWORD";
/// Name of the account created on first start.
pub const INITIAL_ADMIN: &str = "admin";
/// Shortest password accepted for an account.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Opens the database of `config` (running migrations), with one clear
/// error naming the URL (password redacted) when it cannot.
pub fn open_store(config: &ServerConfig) -> anyhow::Result<Pool> {
    store::connect(&config.database_url.0, config.pool_size)
        .with_context(|| format!("cannot open database {}", config.database_url.redacted()))
}

/// Applies pending migrations; returns how many ran now.
pub fn migrate(pool: &Pool) -> anyhow::Result<usize> {
    let mut conn = pool.get().context("cannot get a database connection")?;
    Ok(store::run_migrations(&mut conn)?)
}

/// Refuses passwords that are too short to protect an admin console.
pub fn check_password_policy(password: &str) -> anyhow::Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        bail!("the password must have at least {MIN_PASSWORD_LEN} characters");
    }
    Ok(())
}

/// On a database without users, creates `admin` with the password from
/// `RESTIC_MANAGER_ADMIN_PASSWORD`, or a random one that is returned so the
/// caller can print it once. Returns `None` when users exist already or the
/// password came from the environment.
pub fn bootstrap_admin(pool: &Pool) -> anyhow::Result<Option<String>> {
    let from_env = std::env::var(ADMIN_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty());
    bootstrap_admin_with(pool, from_env)
}

/// [`bootstrap_admin`] with the environment's value passed in (for tests).
pub fn bootstrap_admin_with(
    pool: &Pool,
    env_password: Option<String>,
) -> anyhow::Result<Option<String>> {
    let mut conn = pool.get().context("cannot get a database connection")?;
    if store::users::count(&mut conn)? > 0 {
        return Ok(None);
    }
    let (password, generated) = match env_password {
        Some(p) => {
            check_password_policy(&p)
                .with_context(|| format!("{ADMIN_PASSWORD_ENV} is unusable"))?;
            (p, false)
        }
        None => (auth::generate_password()?, true),
    };
    insert_user(&mut conn, INITIAL_ADMIN, Role::Admin, &password)?;
    tracing::info!(
        username = INITIAL_ADMIN,
        "created the initial admin account"
    );
    Ok(generated.then_some(password))
}

/// `user add`: a new account; a taken username is a clear error.
pub fn add_user(pool: &Pool, username: &str, role: Role, password: &str) -> anyhow::Result<()> {
    validate_username(username)?;
    check_password_policy(password)?;
    let mut conn = pool.get().context("cannot get a database connection")?;
    if store::users::by_username(&mut conn, username)?.is_some() {
        bail!("user {username} exists already");
    }
    insert_user(&mut conn, username, role, password)?;
    audit(&mut conn, "cli", "user.create", Some(username))?;
    Ok(())
}

/// Refuses usernames that are empty, longer than 64 bytes or hold other
/// characters than ASCII letters, digits, `.`, `_`, `-` and `@`.
pub fn validate_username(username: &str) -> anyhow::Result<()> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !ok {
        bail!("invalid username {username:?}: use 1-64 letters, digits, '.', '_', '-' or '@'");
    }
    Ok(())
}

fn insert_user(
    conn: &mut store::DbConnection,
    username: &str,
    role: Role,
    password: &str,
) -> anyhow::Result<()> {
    let now = store::now_ms();
    let hash = auth::hash_password(password)?;
    store::users::insert(
        conn,
        &models::NewUser {
            id: store::new_id(),
            username: username.to_string(),
            password_hash: hash,
            role: role.into(),
            disabled: false,
            created_at: now,
            updated_at: now,
        },
    )?;
    Ok(())
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The ttl does not fit in the time columns.
    #[error("the ttl is too long")]
    TtlTooLong,
    /// No random token could be drawn.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The database refused the row.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// `now + ttl` in Unix milliseconds, if it fits.
fn expiry(now: i64, ttl: Duration) -> Result<i64, TokenError> {
    let ttl_ms = i64::try_from(ttl.as_millis()).map_err(|_| TokenError::TtlTooLong)?;
    now.checked_add(ttl_ms).ok_or(TokenError::TtlTooLong)
}

/// A freshly created enrolment token: the secret (shown once) and its row.
pub struct CreatedEnrollmentToken {
    pub id: String,
    pub token: String,
    pub expires_at: i64,
}

/// Creates a one-time enrolment token valid for `ttl`, made by the user
/// `creator_id` (`None`: the CLI). The one implementation behind
/// `token create` and `POST /api/v1/enrollment-tokens`; the caller writes
/// its own audit row (in the same transaction, for the API).
pub fn insert_enrollment_token(
    conn: &mut store::DbConnection,
    ttl: Duration,
    creator_id: Option<String>,
) -> Result<CreatedEnrollmentToken, TokenError> {
    let now = store::now_ms();
    let expires_at = expiry(now, ttl)?;
    let token = auth::generate_token()?;
    let id = store::new_id();
    store::enrollment::insert(
        conn,
        &models::NewEnrollmentToken {
            id: id.clone(),
            token_hash: auth::hash_token(&token),
            created_by: creator_id,
            created_at: now,
            expires_at,
        },
    )?;
    Ok(CreatedEnrollmentToken {
        id,
        token,
        expires_at,
    })
}

/// `token create`: a one-time enrolment token valid for `ttl`.
pub fn create_enrollment_token(
    pool: &Pool,
    ttl: Duration,
    created_by: &str,
) -> anyhow::Result<CreatedEnrollmentToken> {
    let mut conn = pool.get().context("cannot get a database connection")?;
    let creator = store::users::by_username(&mut conn, created_by)?.map(|u| u.id);
    let created = insert_enrollment_token(&mut conn, ttl, creator)?;
    audit(
        &mut conn,
        created_by,
        "enrollment_token.create",
        Some(&created.id),
    )?;
    Ok(created)
}

/// A freshly created API token: the secret (shown once) and its row.
pub struct CreatedApiToken {
    pub token: String,
    pub row: models::ApiToken,
}

/// Creates an API token for the user `user_id`, valid for `ttl` (`None`:
/// until revoked), acting with at most `role` (`None`: the user's role,
/// whatever it is at each use). The one implementation behind
/// `api-token create` and `POST /api/v1/api-tokens`; the caller checks the
/// user and writes its own audit row.
pub fn insert_api_token(
    conn: &mut store::DbConnection,
    user_id: &str,
    name: &str,
    ttl: Option<Duration>,
    role: Option<Role>,
) -> Result<CreatedApiToken, TokenError> {
    let now = store::now_ms();
    let expires_at = ttl.map(|ttl| expiry(now, ttl)).transpose()?;
    let token = auth::generate_token()?;
    let mut row = store::api_tokens::insert(
        conn,
        &models::NewApiToken {
            id: store::new_id(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            token_hash: auth::hash_token(&token),
            created_at: now,
            expires_at,
        },
    )?;
    if let Some(role) = role {
        row = store::api_tokens::restrict_role(conn, &row.id, role.into())?
            .ok_or(diesel::result::Error::NotFound)?;
    }
    Ok(CreatedApiToken { token, row })
}

/// `api-token create`: an API token for an existing, enabled user.
pub fn create_api_token(
    pool: &Pool,
    username: &str,
    name: &str,
    ttl: Option<Duration>,
) -> anyhow::Result<String> {
    let mut conn = pool.get().context("cannot get a database connection")?;
    let Some(user) = store::users::by_username(&mut conn, username)? else {
        bail!("no user {username}");
    };
    if user.disabled {
        bail!("user {username} is disabled");
    }
    let created = insert_api_token(&mut conn, &user.id, name, ttl, None)?;
    audit(&mut conn, "cli", "api_token.create", Some(&created.row.id))?;
    Ok(created.token)
}

fn audit(
    conn: &mut store::DbConnection,
    actor: &str,
    action: &str,
    target: Option<&str>,
) -> anyhow::Result<()> {
    store::audit::insert(
        conn,
        &models::NewAuditEntry {
            id: store::new_id(),
            at: store::now_ms(),
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.map(str::to_string),
            detail: None,
            source_addr: Some("cli".to_string()),
        },
    )?;
    Ok(())
}
