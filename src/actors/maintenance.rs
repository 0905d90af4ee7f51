//! Where a repository's maintenance runs (issue 12 §2): on a shared
//! repository, prune and check run once per repository, not once per
//! host. The job goes to one host attached to the repository: its
//! `maintenance_host_id` when that host is online, else the first online
//! host attached (by id), else (nobody online) the maintenance host or the
//! asking host, where it waits queued. A prune or check of the repository
//! that is queued or running already is not doubled: a run-now is refused
//! (409) and a schedule's fire is recorded as skipped.
//!
//! [`route`] runs inside the writer transaction that creates the job; who
//! is online comes from the registry's [`Directory`] (a map read, no wait).
//!
//! The same file creates the `unlock` jobs the server runs on a shared
//! repository when no job holds a lease there ([`unlock_job`]).

use diesel::QueryResult;

use super::registry::Directory;
use crate::protocol::JobKind;
use crate::store::models::{Job, NewJob, Repository};
use crate::store::{self, jobs, repositories, DbConnection, JobTrigger};

/// Where a maintenance job of a host goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// On the host itself (a private repository, or not maintenance).
    Own,
    /// On this host attached to the same shared repository.
    Host(String),
    /// A job of the kind is already queued or running on the repository.
    Active(Box<Job>),
}

/// Whether jobs of `kind` act on a whole repository.
pub fn is_maintenance(kind: JobKind) -> bool {
    matches!(kind, JobKind::Prune | JobKind::Check)
}

/// Picks the host that runs `host_id`'s `kind` job (see the module doc).
pub fn route(
    conn: &mut DbConnection,
    sessions: &Directory,
    host_id: &str,
    kind: JobKind,
) -> QueryResult<Route> {
    if !is_maintenance(kind) {
        return Ok(Route::Own);
    }
    let repository = repositories::get_for_host(conn, host_id)?;
    route_with(conn, sessions, host_id, kind, repository)
}

/// [`route`] given the host's repository, read with the host
/// (`store::host_state::for_run`).
pub fn route_with(
    conn: &mut DbConnection,
    sessions: &Directory,
    host_id: &str,
    kind: JobKind,
    repository: Option<Repository>,
) -> QueryResult<Route> {
    if !is_maintenance(kind) {
        return Ok(Route::Own);
    }
    let Some(repo) = repository.filter(|r| r.is_shared()) else {
        return Ok(Route::Own);
    };
    let attached = repositories::hosts_using(conn, &repo.id)?;
    if let Some(active) = jobs::active_of_kind(conn, &attached, kind)? {
        return Ok(Route::Active(Box::new(active)));
    }
    Ok(Route::Host(pick(
        &attached,
        repo.maintenance_host_id.as_deref(),
        host_id,
        |h| sessions.is_online(h),
    )))
}

/// The maintenance host among `attached` (sorted): the preferred one when
/// online, else the first online one, else the preferred one (if
/// attached) or `asking`.
fn pick(
    attached: &[String],
    preferred: Option<&str>,
    asking: &str,
    online: impl Fn(&str) -> bool,
) -> String {
    let preferred = preferred.filter(|p| attached.iter().any(|h| h == p));
    if let Some(p) = preferred.filter(|p| online(p)) {
        return p.to_owned();
    }
    if let Some(first) = attached.iter().find(|h| online(h)) {
        return first.clone();
    }
    preferred.unwrap_or(asking).to_owned()
}

/// An `unlock --remove-all` of `repository_id`, run by the server (issue
/// 12 §3) once no job holds a lease there, on an online host attached to
/// it (none online: nothing). Not doubled when one is queued already. It
/// takes an exclusive lease like any unlock, so it runs before anything
/// that asks after it. The caller hands the job to the host's session.
pub fn unlock_job(
    conn: &mut DbConnection,
    sessions: &Directory,
    repository_id: &str,
    now: i64,
) -> QueryResult<Option<Job>> {
    let attached = repositories::hosts_using(conn, repository_id)?;
    if jobs::active_of_kind(conn, &attached, JobKind::Unlock)?.is_some() {
        return Ok(None);
    }
    let Some(host) = attached.iter().find(|h| sessions.is_online(h)) else {
        return Ok(None);
    };
    let mut job = NewJob::new(
        store::new_id(),
        host.clone(),
        JobKind::Unlock,
        JobTrigger::Manual,
        now,
    );
    job.args = vec!["--remove-all".to_owned()];
    jobs::insert(conn, &job).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The preferred host when online, else the first online one, else
    /// the preferred one, else the asking host.
    #[test]
    fn picks_the_maintenance_host() {
        let attached = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let online = |set: &'static [&'static str]| move |h: &str| set.contains(&h);
        assert_eq!(pick(&attached, Some("b"), "c", online(&["a", "b"])), "b");
        assert_eq!(pick(&attached, Some("b"), "c", online(&["c", "a"])), "a");
        assert_eq!(pick(&attached, Some("b"), "c", online(&[])), "b");
        assert_eq!(pick(&attached, None, "c", online(&[])), "c");
        assert_eq!(pick(&attached, Some("x"), "c", online(&["c"])), "c");
    }
}
