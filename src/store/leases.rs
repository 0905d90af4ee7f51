//! Leases on shared repositories (issue 12 §3): the server's own lock, so
//! that restic's locks never fail a job. A job that touches a shared
//! repository holds a lease on it while it runs: `shared` for backups,
//! forgets without `--prune`, restores, drills and catalog listings;
//! `exclusive` for prune, check, `forget --prune` and unlock.
//!
//! One row per job in `leases`, `held` or `waiting`. The rules are pure
//! ([`decide`]): a request is granted when it is compatible with every
//! held lease (shared with shared) and with every request that waits
//! before it, in the order the jobs were created. The second half is the
//! fairness rule: once an exclusive request waits (or its job is queued on
//! an online host of the repository), shared requests of jobs created
//! after it queue behind it, so a prune is not starved by a stream of
//! backups (and later backups wait for the prune). Ordering by creation
//! (not by asking) keeps one host's queue, which runs in creation order,
//! from waiting on a job queued behind its own.
//!
//! A lease ends when its job ends: a row whose job is terminal counts for
//! nothing and is deleted by the next [`acquire`] on the repository. Rows
//! survive a restart (held ones matter; waiting ones are dropped at start
//! by [`drop_waiting`], their sessions ask again). [`release_host`] ends
//! the leases of a host declared lost.
//!
//! Every write here runs on the one writer (`Persistence`), which orders
//! the decisions.

use diesel::prelude::*;

use super::models::Job;
use super::schema::{hosts, jobs, leases};
use super::{write_transaction, DbConnection, JobKind, JobStatus};
use crate::ids::{HostId, JobId};

/// How a job uses a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Compatible with other shared leases.
    Shared,
    /// Alone on the repository.
    Exclusive,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Shared => "shared",
            Mode::Exclusive => "exclusive",
        }
    }

    fn parse(text: &str) -> Self {
        if text == "shared" {
            Mode::Shared
        } else {
            Mode::Exclusive
        }
    }

    /// Whether two leases can be held together.
    pub fn compatible(self, other: Mode) -> bool {
        self == Mode::Shared && other == Mode::Shared
    }
}

/// The lease a job of `kind` with these extra `args` needs on a shared
/// repository (`None`: it does not touch the repository).
pub fn mode_for(kind: JobKind, args: &[String]) -> Option<Mode> {
    match kind {
        JobKind::Backup | JobKind::Restore | JobKind::Drill | JobKind::Catalog => {
            Some(Mode::Shared)
        }
        JobKind::Forget if args.iter().any(|a| a == "--prune") => Some(Mode::Exclusive),
        JobKind::Forget => Some(Mode::Shared),
        JobKind::Prune | JobKind::Check | JobKind::Unlock => Some(Mode::Exclusive),
        JobKind::Init => None,
    }
}

const HELD: &str = "held";
const WAITING: &str = "waiting";

/// A lease row of a live job, as [`decide`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub job_id: String,
    pub mode: Mode,
    pub held: bool,
    /// When the job first asked (the queue order, with `job_id`).
    pub requested_at: i64,
    /// The job's kind and host name, for the reason shown to operators.
    pub kind: JobKind,
    pub hostname: String,
}

impl Entry {
    fn before(&self, at: i64, job_id: &str) -> bool {
        (self.requested_at, self.job_id.as_str()) < (at, job_id)
    }

    /// "waiting for job J (prune on host h), which holds an exclusive
    /// lease on the repository".
    fn reason(&self) -> String {
        let what = if self.held { "holds" } else { "waits for" };
        let article = match self.mode {
            Mode::Shared => "a",
            Mode::Exclusive => "an",
        };
        format!(
            "job {} ({} on host {}), which {what} {article} {} lease on the repository",
            self.job_id,
            self.kind,
            self.hostname,
            self.mode.as_str()
        )
    }
}

/// Whether a request of `mode` by `job_id`, first made at `requested_at`,
/// can be granted beside `others` (the other live rows of the
/// repository): `Err` names the entry it waits for, a held one first.
pub fn decide<'a>(
    job_id: &str,
    mode: Mode,
    requested_at: i64,
    others: &'a [Entry],
) -> Result<(), &'a Entry> {
    let others = || others.iter().filter(|e| e.job_id != job_id);
    if let Some(holder) = others().find(|e| e.held && !e.mode.compatible(mode)) {
        return Err(holder);
    }
    match others()
        .filter(|e| !e.held && e.before(requested_at, job_id) && !e.mode.compatible(mode))
        .min_by(|a, b| (a.requested_at, &a.job_id).cmp(&(b.requested_at, &b.job_id)))
    {
        Some(earlier) => Err(earlier),
        None => Ok(()),
    }
}

/// What [`acquire`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    Granted,
    /// Waiting; the text is the job's `waiting_for`.
    Waiting(String),
}

#[derive(Insertable, AsChangeset)]
#[diesel(table_name = leases)]
struct Row<'a> {
    job_id: &'a str,
    repository_id: &'a str,
    host_id: &'a str,
    mode: &'a str,
    state: &'a str,
    requested_at: i64,
    #[diesel(treat_none_as_null = true)]
    granted_at: Option<i64>,
    #[diesel(treat_none_as_null = true)]
    waiting_for: Option<String>,
}

/// The live rows of a repository (their jobs not terminal); deletes the
/// rows of ended jobs on the way. Queued jobs of online hosts attached to
/// the repository that will need an exclusive lease and have not asked
/// yet count as waiting (from their creation): a prune queued behind its
/// host's own backup still stops backups created after it elsewhere.
fn live_entries(conn: &mut DbConnection, repository_id: &str) -> QueryResult<Vec<Entry>> {
    let rows: Vec<(String, String, String, i64, JobKind, JobStatus, String)> = leases::table
        .inner_join(jobs::table)
        .inner_join(hosts::table)
        .filter(leases::repository_id.eq(repository_id))
        .select((
            leases::job_id,
            leases::mode,
            leases::state,
            leases::requested_at,
            jobs::kind,
            jobs::status,
            hosts::hostname,
        ))
        .load(conn)?;
    let ended: Vec<&str> = rows
        .iter()
        .filter(|r| r.5.is_terminal())
        .map(|r| r.0.as_str())
        .collect();
    if !ended.is_empty() {
        diesel::delete(leases::table.filter(leases::job_id.eq_any(&ended))).execute(conn)?;
    }
    let mut entries: Vec<Entry> = rows
        .into_iter()
        .filter(|r| !r.5.is_terminal())
        .map(
            |(job_id, mode, state, requested_at, kind, _, hostname)| Entry {
                job_id,
                mode: Mode::parse(&mode),
                held: state == HELD,
                requested_at,
                kind,
                hostname,
            },
        )
        .collect();
    let pending: Vec<(Job, String)> = jobs::table
        .inner_join(hosts::table)
        .filter(hosts::repository_id.eq(repository_id))
        .filter(hosts::online.eq(true))
        .filter(jobs::status.eq(JobStatus::Queued))
        .filter(jobs::kind.eq_any([
            JobKind::Prune,
            JobKind::Check,
            JobKind::Unlock,
            JobKind::Forget,
        ]))
        .select((Job::as_select(), hosts::hostname))
        .load(conn)?;
    for (job, hostname) in pending {
        if entries.iter().any(|e| e.job_id == job.id.as_str()) {
            continue;
        }
        if mode_for(job.kind, &job.args) == Some(Mode::Exclusive) {
            entries.push(Entry {
                job_id: job.id.to_string(),
                mode: Mode::Exclusive,
                held: false,
                requested_at: job.created_at,
                kind: job.kind,
                hostname,
            });
        }
    }
    Ok(entries)
}

/// Asks for a lease for `job_id` of `host_id` on `repository_id`, in one
/// transaction: granted (held from now on; a job that holds one already
/// keeps it) or waiting, with the reason stored for the job API. Requests
/// are ordered by their jobs' creation.
pub fn acquire(
    conn: &mut DbConnection,
    job_id: &JobId,
    host_id: &HostId,
    repository_id: &str,
    mode: Mode,
    now: i64,
) -> QueryResult<Acquired> {
    write_transaction(conn, |conn| {
        let entries = live_entries(conn, repository_id)?;
        let mine = entries.iter().find(|e| e.job_id == job_id.as_str());
        if mine.is_some_and(|e| e.held) {
            return Ok(Acquired::Granted);
        }
        let has_row = leases::table.find(job_id).count().get_result::<i64>(conn)? > 0;
        let requested_at: i64 = jobs::table
            .find(job_id)
            .select(jobs::created_at)
            .first::<i64>(conn)
            .optional()?
            .unwrap_or(now);
        let (state, granted_at, waiting_for) = match decide(job_id, mode, requested_at, &entries) {
            Ok(()) => (HELD, Some(now), None),
            Err(blocker) => (
                WAITING,
                None,
                Some(format!("waiting for {}", blocker.reason())),
            ),
        };
        let row = Row {
            job_id,
            repository_id,
            host_id,
            mode: mode.as_str(),
            state,
            requested_at,
            granted_at,
            waiting_for: waiting_for.clone(),
        };
        if has_row {
            diesel::update(leases::table.find(job_id))
                .set(&row)
                .execute(conn)?;
        } else {
            diesel::insert_into(leases::table)
                .values(&row)
                .execute(conn)?;
        }
        Ok(waiting_for.map_or(Acquired::Granted, Acquired::Waiting))
    })
}

/// Hosts with a job waiting for a lease on `repository_id` (to be told to
/// ask again once a lease there ended).
pub fn waiting_hosts(conn: &mut DbConnection, repository_id: &str) -> QueryResult<Vec<String>> {
    leases::table
        .filter(leases::repository_id.eq(repository_id))
        .filter(leases::state.eq(WAITING))
        .select(leases::host_id)
        .distinct()
        .load(conn)
}

/// Drops the waiting requests of `host_id` (its session ended: it will
/// ask again when it is back); returns the repositories concerned.
pub fn drop_waiting_of_host(conn: &mut DbConnection, host_id: &str) -> QueryResult<Vec<String>> {
    let repositories: Vec<String> = leases::table
        .filter(leases::host_id.eq(host_id))
        .filter(leases::state.eq(WAITING))
        .select(leases::repository_id)
        .distinct()
        .load(conn)?;
    diesel::delete(
        leases::table
            .filter(leases::host_id.eq(host_id))
            .filter(leases::state.eq(WAITING)),
    )
    .execute(conn)?;
    Ok(repositories)
}

/// Drops the waiting request of one job; returns its repository.
pub fn drop_request(conn: &mut DbConnection, job_id: &str) -> QueryResult<Vec<String>> {
    let repositories: Vec<String> = leases::table
        .filter(leases::job_id.eq(job_id))
        .filter(leases::state.eq(WAITING))
        .select(leases::repository_id)
        .load(conn)?;
    diesel::delete(
        leases::table
            .filter(leases::job_id.eq(job_id))
            .filter(leases::state.eq(WAITING)),
    )
    .execute(conn)?;
    Ok(repositories)
}

/// Drops every waiting request (at start: no session is waiting yet).
pub fn drop_waiting(conn: &mut DbConnection) -> QueryResult<usize> {
    diesel::delete(leases::table.filter(leases::state.eq(WAITING))).execute(conn)
}

/// Ends every lease of `host_id` (the host was declared lost); returns the
/// repositories where it held one.
pub fn release_host(conn: &mut DbConnection, host_id: &str) -> QueryResult<Vec<String>> {
    write_transaction(conn, |conn| {
        let repositories: Vec<String> = leases::table
            .filter(leases::host_id.eq(host_id))
            .filter(leases::state.eq(HELD))
            .select(leases::repository_id)
            .distinct()
            .load(conn)?;
        diesel::delete(leases::table.filter(leases::host_id.eq(host_id))).execute(conn)?;
        Ok(repositories)
    })
}

/// Hosts holding a lease whose job is still live, that have been offline
/// since before `offline_before` (Unix ms) or are revoked: declared lost.
pub fn lost_holders(conn: &mut DbConnection, offline_before: i64) -> QueryResult<Vec<String>> {
    leases::table
        .inner_join(hosts::table)
        .inner_join(jobs::table)
        .filter(leases::state.eq(HELD))
        .filter(jobs::status.eq_any(JobStatus::ACTIVE))
        .filter(
            hosts::revoked_at
                .is_not_null()
                .or(hosts::online.eq(false).and(
                    hosts::last_seen_at
                        .lt(offline_before)
                        .or(hosts::last_seen_at.is_null()),
                )),
        )
        .select(leases::host_id)
        .distinct()
        .load(conn)
}

/// Whether any live job holds a lease on `repository_id`.
pub fn any_held(conn: &mut DbConnection, repository_id: &str) -> QueryResult<bool> {
    let held: i64 = leases::table
        .inner_join(jobs::table)
        .filter(leases::repository_id.eq(repository_id))
        .filter(leases::state.eq(HELD))
        .filter(jobs::status.eq_any(JobStatus::ACTIVE))
        .count()
        .get_result(conn)?;
    Ok(held > 0)
}

/// A lease of a live job on a repository, for the Repositories page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentLease {
    pub job_id: String,
    pub host_id: String,
    pub hostname: String,
    pub kind: JobKind,
    /// `shared` or `exclusive`.
    pub mode: String,
    /// Whether the job holds it (else it waits).
    pub held: bool,
    pub waiting_for: Option<String>,
}

/// One row of [`current`]'s query: repository, job, host id, hostname,
/// kind, mode, state, waiting_for.
type CurrentLeaseRow = (
    String,
    String,
    String,
    String,
    JobKind,
    String,
    String,
    Option<String>,
);

/// The leases of live (queued or running) jobs on each of these
/// repositories, held ones first, then in the order they were asked;
/// rows of ended jobs count for nothing and are left out.
pub fn current(
    conn: &mut DbConnection,
    repository_ids: &[&str],
) -> QueryResult<Vec<(String, CurrentLease)>> {
    if repository_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<CurrentLeaseRow> = leases::table
        .inner_join(jobs::table)
        .inner_join(hosts::table.on(hosts::id.eq(leases::host_id)))
        .filter(leases::repository_id.eq_any(repository_ids))
        .filter(jobs::status.eq_any(JobStatus::ACTIVE))
        .order((
            leases::repository_id.asc(),
            leases::state.asc(),
            leases::requested_at.asc(),
            leases::job_id.asc(),
        ))
        .select((
            leases::repository_id,
            leases::job_id,
            leases::host_id,
            hosts::hostname,
            jobs::kind,
            leases::mode,
            leases::state,
            leases::waiting_for,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(repo, job_id, host_id, hostname, kind, mode, state, waiting_for)| {
                (
                    repo,
                    CurrentLease {
                        job_id,
                        host_id,
                        hostname,
                        kind,
                        mode,
                        held: state == HELD,
                        waiting_for,
                    },
                )
            },
        )
        .collect())
}

/// `waiting_for` of each of these jobs that waits for a lease.
pub fn waiting_for(
    conn: &mut DbConnection,
    job_ids: &[&str],
) -> QueryResult<Vec<(String, String)>> {
    if job_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, Option<String>)> = leases::table
        .filter(leases::job_id.eq_any(job_ids))
        .filter(leases::state.eq(WAITING))
        .select((leases::job_id, leases::waiting_for))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(job, reason)| Some((job, reason?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(job: &str, mode: Mode, held: bool, at: i64) -> Entry {
        Entry {
            job_id: job.to_owned(),
            mode,
            held,
            requested_at: at,
            kind: if mode == Mode::Shared {
                JobKind::Backup
            } else {
                JobKind::Prune
            },
            hostname: format!("host-{job}"),
        }
    }

    /// Shared leases go together; exclusive goes alone, either way round.
    #[test]
    fn compatibility() {
        use Mode::*;
        assert!(Shared.compatible(Shared));
        assert!(!Shared.compatible(Exclusive));
        assert!(!Exclusive.compatible(Shared));
        assert!(!Exclusive.compatible(Exclusive));
        let backups = [entry("b1", Shared, true, 1), entry("b2", Shared, true, 2)];
        assert_eq!(decide("b3", Shared, 3, &backups), Ok(()));
        assert_eq!(
            decide("p", Exclusive, 3, &backups).unwrap_err().job_id,
            "b1"
        );
        let prune = [entry("p", Exclusive, true, 1)];
        assert_eq!(decide("b", Shared, 2, &prune).unwrap_err().job_id, "p");
        assert_eq!(decide("c", Exclusive, 2, &prune).unwrap_err().job_id, "p");
        assert_eq!(decide("p", Exclusive, 1, &prune), Ok(()), "its own row");
    }

    /// A waiting exclusive request stops later shared ones (no
    /// starvation), not earlier ones; requests are served in order.
    #[test]
    fn queue_order_and_fairness() {
        use Mode::*;
        let rows = [
            entry("b1", Shared, true, 1),
            entry("p", Exclusive, false, 5),
        ];
        // A backup asking after the prune waits for the prune …
        let blocked = decide("b2", Shared, 6, &rows).unwrap_err();
        assert_eq!(blocked.job_id, "p");
        assert!(blocked.reason().contains("waits for an exclusive lease"));
        // … one that asked before it (and retries) does not.
        assert_eq!(decide("b0", Shared, 4, &rows), Ok(()));
        // The prune itself waits for the held backup, then goes.
        assert_eq!(decide("p", Exclusive, 5, &rows).unwrap_err().job_id, "b1");
        assert_eq!(decide("p", Exclusive, 5, &rows[1..]), Ok(()));
        // Two exclusive requests: the first asked goes first.
        let two = [
            entry("p", Exclusive, false, 5),
            entry("c", Exclusive, false, 7),
        ];
        assert_eq!(decide("p", Exclusive, 5, &two), Ok(()));
        assert_eq!(decide("c", Exclusive, 7, &two).unwrap_err().job_id, "p");
        // Waiting shared requests do not block each other.
        let shared = [entry("b1", Shared, false, 1)];
        assert_eq!(decide("b2", Shared, 2, &shared), Ok(()));
        // An exclusive request behind a waiting shared one waits (FIFO).
        assert_eq!(decide("p", Exclusive, 2, &shared).unwrap_err().job_id, "b1");
    }

    /// Which jobs take which lease.
    #[test]
    fn modes() {
        assert_eq!(mode_for(JobKind::Backup, &[]), Some(Mode::Shared));
        assert_eq!(mode_for(JobKind::Forget, &[]), Some(Mode::Shared));
        assert_eq!(
            mode_for(JobKind::Forget, &["--prune".to_owned()]),
            Some(Mode::Exclusive)
        );
        for kind in [JobKind::Prune, JobKind::Check, JobKind::Unlock] {
            assert_eq!(mode_for(kind, &[]), Some(Mode::Exclusive));
        }
        assert_eq!(mode_for(JobKind::Init, &[]), None);
    }
}
