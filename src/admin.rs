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

fn validate_username(username: &str) -> anyhow::Result<()> {
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

/// A freshly created enrolment token: the secret (shown once) and its row.
pub struct CreatedEnrollmentToken {
    pub id: String,
    pub token: String,
    pub expires_at: i64,
}

/// `token create`: a one-time enrolment token valid for `ttl`.
pub fn create_enrollment_token(
    pool: &Pool,
    ttl: Duration,
    created_by: &str,
) -> anyhow::Result<CreatedEnrollmentToken> {
    let ttl_ms = i64::try_from(ttl.as_millis()).context("the ttl is too long")?;
    let token = auth::generate_token()?;
    let now = store::now_ms();
    let id = store::new_id();
    let expires_at = now.saturating_add(ttl_ms);
    let mut conn = pool.get().context("cannot get a database connection")?;
    let creator = store::users::by_username(&mut conn, created_by)?.map(|u| u.id);
    store::enrollment::insert(
        &mut conn,
        &models::NewEnrollmentToken {
            id: id.clone(),
            token_hash: auth::hash_token(&token),
            created_by: creator,
            created_at: now,
            expires_at,
        },
    )?;
    audit(&mut conn, created_by, "enrollment_token.create", Some(&id))?;
    Ok(CreatedEnrollmentToken {
        id,
        token,
        expires_at,
    })
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
    let now = store::now_ms();
    let expires_at = match ttl {
        Some(ttl) => {
            Some(now.saturating_add(i64::try_from(ttl.as_millis()).context("the ttl is too long")?))
        }
        None => None,
    };
    let token = auth::generate_token()?;
    let id = store::new_id();
    store::api_tokens::insert(
        &mut conn,
        &models::NewApiToken {
            id: id.clone(),
            user_id: user.id,
            name: name.to_string(),
            token_hash: auth::hash_token(&token),
            created_at: now,
            expires_at,
        },
    )?;
    audit(&mut conn, "cli", "api_token.create", Some(&id))?;
    Ok(token)
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
