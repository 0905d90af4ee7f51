//! What a session sends after `hello`, loaded from the database: the
//! host's `config.update` (repository secrets opened with the server key,
//! never logged), its `schedule.set`, its `health.set` and its queued jobs. The REST API's
//! configuration changes build the same [`HostConfig`] with
//! [`load_config`] and hand it to the live session (`PushConfig`).
//! Blocking: call inside `web::block`.
//!
//! Each load's reads go together ([`store::read_together`]): on SQLite one
//! read transaction, so one snapshot and one check of the connection's
//! page cache instead of one per statement (while hellos are being
//! written every commit makes a reader drop its cached pages, and per
//! statement a greeting re-read the same pages up to ten times); on
//! PostgreSQL no `BEGIN`/`COMMIT` round trips, which gave no common
//! snapshot there. A host's policy schedules come from
//! [`schedule_set::for_host`] (issue 12 §7: `hello` with policies).

use super::job_queue::QueuedJob;
use crate::crypto::{self, SecretKey};
use crate::protocol;
use crate::store::models::Repository;
use crate::store::{self, host_state, jobs, repositories, schedule_set, DbConnection};

/// A host's configuration as the agent receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// `None`: the repository did not change, no `config.update` is sent
    /// (a policy's schedule change reaches 10,000 hosts without opening
    /// 10,000 sealed passwords).
    pub config: Option<protocol::ConfigUpdate>,
    /// The host's config version at the load (also when `config` is
    /// `None`): the session compares `heartbeat.config_version` with it.
    pub config_version: u64,
    /// The host's schedule version and `schedule.set` schedules.
    pub schedule_version: u64,
    pub schedules: schedule_set::HostSchedules,
    /// The shared repository the host is attached to, if any: its jobs
    /// take leases on it (`store::leases`).
    pub shared_repository: Option<String>,
    /// Whether the server holds a repository for the host at all (a
    /// `config.update` cannot clear the agent's: see
    /// `HostSession::repository_withdrawn`).
    pub has_repository: bool,
    /// The host's service health checks, its own and its policies'
    /// (`health.set`, sent only to an agent with the `health` capability).
    pub health: protocol::HealthSet,
}

/// What a session sends after `hello`.
#[derive(Debug, Clone)]
pub struct Greeting {
    pub config: HostConfig,
    /// Queued jobs due at the load time, in creation order.
    pub queued: Vec<QueuedJob>,
}

/// Opens one sealed secret; a failure is logged (never the value) and the
/// field is left out, which tells the agent to keep what it has.
fn open_secret(
    key: &SecretKey,
    sealed: Option<&[u8]>,
    repository_id: &str,
    what: &str,
) -> Option<String> {
    let sealed = sealed?;
    match crypto::open_string(key, sealed, repository_id.as_bytes()) {
        Ok(secret) => Some(secret),
        Err(e) => {
            tracing::error!(repository_id, error = %e, "cannot open the repository {what}");
            None
        }
    }
}

/// The host's repository settings as `config.update` carries them
/// (secrets opened), or `None` when the host has no repository. Also what
/// a restore from this host's repository is sent with.
pub fn load_repository(
    conn: &mut DbConnection,
    key: &SecretKey,
    host_id: &str,
) -> diesel::QueryResult<Option<protocol::ConfigUpdate>> {
    Ok(repositories::get_for_host(conn, host_id)?.map(|repo| repository_update(key, &repo)))
}

/// `config.update`'s repository fields of `repo` (secrets opened).
fn repository_update(key: &SecretKey, repo: &Repository) -> protocol::ConfigUpdate {
    protocol::ConfigUpdate {
        repo_url: Some(repo.url.clone()),
        repo_password: open_secret(key, repo.password_sealed.as_deref(), &repo.id, "password"),
        // The server's whole state: a field it does not hold goes as
        // `null`, which clears it on the agent; a secret that does not
        // open goes absent, which leaves the agent's.
        repo_username: Some(repo.username.clone()),
        repo_credential: match &repo.credential_sealed {
            None => Some(None),
            Some(sealed) => {
                open_secret(key, Some(sealed.as_slice()), &repo.id, "credential").map(Some)
            }
        },
        hook_shell: Some(repo.hook_shell.clone()),
        version: None,
    }
}

/// Loads the host's `config.update` (with its config version) and
/// `schedule.set`.
pub fn load_config(
    conn: &mut DbConnection,
    key: &SecretKey,
    host_id: &str,
) -> diesel::QueryResult<HostConfig> {
    store::read_together(conn, |conn| config_in(conn, key, host_id))
}

/// [`load_config`] inside the caller's read transaction.
fn config_in(
    conn: &mut DbConnection,
    key: &SecretKey,
    host_id: &str,
) -> diesel::QueryResult<HostConfig> {
    Ok(config_and_queued(conn, key, host_id)?.0)
}

/// [`config_in`], and whether the host has a queued job (read with its
/// state).
fn config_and_queued(
    conn: &mut DbConnection,
    key: &SecretKey,
    host_id: &str,
) -> diesel::QueryResult<(HostConfig, bool)> {
    let (mut loaded, repository, has_queued) = load_with_repository(conn, host_id)?;
    let mut config = repository
        .as_ref()
        .map(|repo| repository_update(key, repo))
        .unwrap_or_default();
    config.version = Some(loaded.config_version);
    loaded.config = Some(config);
    Ok((loaded, has_queued))
}

/// Loads the host's `schedule.set` only (no `config.update`): for a change
/// that left its repository as it was.
pub fn load_schedules(conn: &mut DbConnection, host_id: &str) -> diesel::QueryResult<HostConfig> {
    store::read_together(conn, |conn| Ok(load_with_repository(conn, host_id)?.0))
}

/// [`load_schedules`], the host's repository row and whether it has a
/// queued job, read once. The
/// host's one-row state (versions, labels, repository, own checks, policy
/// revision) is one statement (`store::host_state`), read before the
/// schedules: a change made in between is sent labelled with the older
/// version, so the agent's next heartbeat asks for it again, never the
/// other way round.
fn load_with_repository(
    conn: &mut DbConnection,
    host_id: &str,
) -> diesel::QueryResult<(HostConfig, Option<Repository>, bool)> {
    let Some(state) = host_state::get(conn, host_id)? else {
        // No such host (deleted meanwhile): nothing to run, nothing to check.
        return Ok((
            HostConfig {
                config: None,
                config_version: 0,
                schedule_version: 1,
                schedules: schedule_set::HostSchedules::default(),
                shared_repository: None,
                has_repository: false,
                health: protocol::HealthSet { checks: Vec::new() },
            },
            None,
            false,
        ));
    };
    let schedules = schedule_set::for_host_at(conn, host_id, state.policy_revision)?;
    let health = protocol::HealthSet {
        checks: crate::store::health::effective_checks_of(
            conn,
            state.own_checks.as_deref(),
            &state.labels,
            state.policy_revision,
        )?
        .into_iter()
        .map(|check| check.spec)
        .collect(),
    };
    let repository = state.repository;
    let loaded = HostConfig {
        config: None,
        config_version: u64::try_from(state.config.config_version).unwrap_or(0),
        shared_repository: repository
            .as_ref()
            .filter(|r| r.is_shared())
            .map(|r| r.id.clone()),
        has_repository: repository.is_some(),
        health,
        schedule_version: u64::try_from(state.schedule_version.unwrap_or(1)).unwrap_or(0),
        schedules,
    };
    Ok((loaded, repository, state.has_queued))
}

/// Loads the host's configuration and its jobs due at `now`.
pub fn load_greeting(
    conn: &mut DbConnection,
    key: &SecretKey,
    host_id: &str,
    now: i64,
) -> diesel::QueryResult<Greeting> {
    store::read_together(conn, |conn| {
        let (config, has_queued) = config_and_queued(conn, key, host_id)?;
        // Most greetings find no queued job, and skip reading them.
        let queued = if has_queued {
            jobs::queued_for_host(conn, host_id, now)?
                .iter()
                .map(QueuedJob::of)
                .collect()
        } else {
            Vec::new()
        };
        Ok(Greeting { config, queued })
    })
}
