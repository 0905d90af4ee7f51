//! The admin commands behind the CLI (`user add`, `token create`,
//! `api-token create`, `host bulk-enroll`, `migrate`, `export`, `apply`)
//! and the first-start bootstrap of the
//! `admin` account. Each is a plain blocking function over the pool so the
//! binary stays thin and tests can call them directly. The rules they share
//! with the REST API live apart: account rules in [`crate::auth`], token
//! issuance in [`crate::tokens`].

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::auth::{self, Role};
use crate::config::ServerConfig;
use crate::config_as_code;
use crate::crypto::SecretKey;
use crate::store::{self, models, Pool};
use crate::tokens;

/// Environment variable that sets the first admin's password.
pub const ADMIN_PASSWORD_ENV: &str = "RESTIC_MANAGER_ADMIN_PASSWORD";
/// Name of the account created on first start.
pub const INITIAL_ADMIN: &str = "admin";

/// Opens the database of `config` (running migrations), with one clear
/// error naming the URL (password redacted) when it cannot.
pub fn open_store(config: &ServerConfig) -> anyhow::Result<Pool> {
    store::connect_with(&config.database_url.0, &config.pool)
        .with_context(|| format!("cannot open database {}", config.database_url.redacted()))
}

/// Applies pending migrations; returns how many ran now.
pub fn migrate(pool: &Pool) -> anyhow::Result<usize> {
    let mut conn = pool.get().context("cannot get a database connection")?;
    Ok(store::run_migrations(&mut conn)?)
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
            auth::check_password_policy(&p)
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
    auth::validate_username(username)?;
    auth::check_password_policy(password)?;
    let mut conn = pool.get().context("cannot get a database connection")?;
    if store::users::by_username(&mut conn, username)?.is_some() {
        bail!("user {username} exists already");
    }
    insert_user(&mut conn, username, role, password)?;
    audit(&mut conn, "cli", "user.create", Some(username))?;
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
            role,
            disabled: false,
            created_at: now,
            updated_at: now,
        },
    )?;
    Ok(())
}

/// `token create`: a one-time enrolment token valid for `ttl`.
pub fn create_enrollment_token(
    pool: &Pool,
    ttl: Duration,
    created_by: &str,
) -> anyhow::Result<tokens::CreatedEnrollmentToken> {
    let mut conn = pool.get().context("cannot get a database connection")?;
    let creator = store::users::by_username(&mut conn, created_by)?.map(|u| u.id);
    let created = tokens::insert_enrollment_token(&mut conn, ttl, creator)?;
    audit(
        &mut conn,
        created_by,
        "enrollment_token.create",
        Some(&created.id),
    )?;
    Ok(created)
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
    let created = tokens::insert_api_token(&mut conn, &user.id, name, ttl, None)?;
    audit(&mut conn, "cli", "api_token.create", Some(&created.row.id))?;
    Ok(created.token)
}

/// Most hosts one `host bulk-enroll` creates.
pub const MAX_BULK_ENROLL: usize = 1_000_000;

/// A host made by [`bulk_enroll`]: its id and its agent token (a secret,
/// shown once: only its SHA-256 is stored).
pub struct BulkEnrolled {
    pub host_id: String,
    pub agent_token: String,
}

/// `host bulk-enroll`: creates `count` hosts named `{prefix}-{n}` (Linux,
/// amd64, offline, no repository) in one transaction, each with its own
/// agent token, and one audit entry for the lot. For provisioning a fleet
/// (or a load test) without spending one enrolment token per host; the
/// agents then connect with the tokens directly, as after `enroll`.
pub fn bulk_enroll(
    pool: &Pool,
    count: usize,
    hostname_prefix: &str,
) -> anyhow::Result<Vec<BulkEnrolled>> {
    if count == 0 || count > MAX_BULK_ENROLL {
        bail!("the count must be between 1 and {MAX_BULK_ENROLL}");
    }
    let prefix = hostname_prefix.trim();
    if prefix.is_empty() || prefix.len() > 200 || prefix.chars().any(char::is_control) {
        bail!("the hostname prefix must be 1 to 200 characters without control characters");
    }
    let now = store::now_ms();
    let mut enrolled = Vec::with_capacity(count);
    let mut rows = Vec::with_capacity(count);
    for n in 1..=count {
        let agent_token = auth::generate_token()?;
        let host_id = store::new_id();
        rows.push(models::NewHost::new(
            host_id.clone(),
            format!("{prefix}-{n}"),
            auth::hash_token(&agent_token),
            now,
        ));
        enrolled.push(BulkEnrolled {
            host_id,
            agent_token,
        });
    }
    let mut conn = pool.get().context("cannot get a database connection")?;
    store::write_transaction(&mut conn, |conn| -> anyhow::Result<()> {
        for row in &rows {
            store::hosts::insert(conn, row)?;
        }
        store::audit::record(
            conn,
            now,
            "cli",
            Some("cli"),
            "host.bulk_enroll",
            None,
            Some(serde_json::json!({"count": count, "hostname_prefix": prefix})),
        )?;
        Ok(())
    })?;
    Ok(enrolled)
}

/// `host bulk-enroll` to a file: creates `path` first (new, readable by
/// its owner only: it holds secrets; an existing file is an error, so no
/// tokens are lost to a typo), then the hosts, then writes one
/// `host_id<TAB>agent_token` line per host. If the hosts cannot be
/// created, the empty file is removed again.
pub fn bulk_enroll_to_file(
    pool: &Pool,
    count: usize,
    hostname_prefix: &str,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let hosts = match bulk_enroll(pool, count, hostname_prefix) {
        Ok(hosts) => hosts,
        Err(e) => {
            if let Err(remove) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %remove, "cannot remove the empty output file");
            }
            return Err(e);
        }
    };
    let mut out = std::io::BufWriter::new(file);
    for host in &hosts {
        writeln!(out, "{}\t{}", host.host_id, host.agent_token)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `export` against the database: the configuration file
/// ([`crate::config_as_code::export`]).
pub fn export_config(pool: &Pool) -> anyhow::Result<String> {
    let mut conn = pool.get().context("cannot get a database connection")?;
    Ok(config_as_code::export(&mut conn)?)
}

/// `apply FILE [--dry-run]` against the database: reads the file (its
/// secret references in this process's environment and on this
/// machine), then applies it in one transaction, audited as `cli`.
/// Hosts get the change when their agent next connects: a running
/// server's live sessions are not told (use `--server` for that).
pub fn apply_config(
    pool: &Pool,
    key_file: &Path,
    text: &str,
    dry_run: bool,
) -> anyhow::Result<config_as_code::Applied> {
    let desired = config_as_code::parse(text, &config_as_code::process_env)?;
    let key = SecretKey::load_or_create(key_file)
        .with_context(|| format!("cannot use key file {}", key_file.display()))?;
    let mut conn = pool.get().context("cannot get a database connection")?;
    let options = config_as_code::ApplyOptions {
        dry_run,
        actor: "cli",
        source_addr: Some("cli"),
    };
    Ok(config_as_code::apply(&mut conn, &desired, &key, &options)?)
}

fn audit(
    conn: &mut store::DbConnection,
    actor: &str,
    action: &str,
    target: Option<&str>,
) -> anyhow::Result<()> {
    store::audit::record(
        conn,
        store::now_ms(),
        actor,
        Some("cli"),
        action,
        target,
        None,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `host bulk-enroll`: every host gets its own token, stored only as
    /// a hash that finds the host; the file holds one line per host and is
    /// private; a second run refuses to overwrite it; one audit entry.
    #[test]
    fn bulk_enroll_writes_private_tokens_that_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let pool = store::connect(&dir.path().join("t.db").display().to_string(), 2).unwrap();
        let out = dir.path().join("hosts.tsv");
        bulk_enroll_to_file(&pool, 3, "lg", &out).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<(&str, &str)> = text.lines().map(|l| l.split_once('\t').unwrap()).collect();
        assert_eq!(lines.len(), 3);
        let mut conn = pool.get().unwrap();
        for (host_id, token) in &lines {
            let host = store::hosts::find_by_agent_token(&mut conn, &auth::hash_token(token))
                .unwrap()
                .unwrap();
            assert_eq!(&host.id, host_id);
            assert!(host.hostname.starts_with("lg-"));
            assert!(store::schedule_versions::get(&mut conn, host_id)
                .unwrap()
                .is_some());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = bulk_enroll_to_file(&pool, 1, "lg", &out).unwrap_err();
        assert!(again.to_string().contains("cannot create"), "{again}");
        let audit = store::audit::list(
            &mut conn,
            &store::audit::AuditFilter {
                action: Some("host.bulk_enroll".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(audit.total, 1);
        assert!(bulk_enroll(&pool, 0, "lg").is_err());
        assert!(bulk_enroll(&pool, 1, " ").is_err());
    }
}
