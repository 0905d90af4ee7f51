//! The `ui` scenario's data, written straight into the server's database
//! before the server starts (setup, not measured): hosts with labels, a
//! source group and a schedule each, jobs spread over the last
//! [`SPAN_MS`], their log lines (one job holds a tenth of them, so that
//! the first and last page of a long log can be read), and a few missed
//! runs.
//!
//! Each table is filled with `INSERT … SELECT` over a generated series of
//! numbers (a recursive CTE, which both SQLite and PostgreSQL run), a few
//! hundred thousand rows per statement, so 10 million log lines take a
//! minute rather than an hour of round trips. Only padding a number to
//! twelve digits is spelled per backend. Ids are UUID-shaped and sort in
//! creation order, below every id the server makes (UUID v7 of today).
//!
//! On PostgreSQL the jobs go in with the `jobs_summaries` trigger off and
//! the summary rows are then built in one pass ([`rebuild_summaries`]): the
//! trigger updates the same few `job_counts` rows once per job, and inside
//! one statement every update walks all earlier versions of its row (none
//! can be pruned before the statement ends), so a statement's time grows
//! with the square of its rows: 20,000 jobs took 7 s, 40,000 took 29 s,
//! and the million of the `ui` scenario about half an hour. With the
//! trigger off, 100,000 jobs take 6 s. Round trips were never the cost, so `COPY`
//! would not help (it fires the same trigger). SQLite keeps the trigger:
//! it updates rows in place. PostgreSQL is vacuumed and analysed at the
//! end, as autovacuum would have done to a database that grew slowly.

use anyhow::Context;
use diesel::{Connection, RunQueryDsl};
use restic_manager::store::{self, DbConnection};

/// How far back the seeded jobs go (inside the default log retention, so
/// that nothing is pruned while the scenario measures).
pub const SPAN_MS: i64 = 60 * 86_400_000;
/// Jobs per `INSERT … SELECT` of `jobs`.
const JOBS_PER_STATEMENT: u64 = 100_000;
/// Log lines per `INSERT … SELECT` of `job_logs`.
const LINES_PER_STATEMENT: u64 = 500_000;

/// How much to seed.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub hosts: u64,
    pub jobs: u64,
    pub log_lines: u64,
    /// The time the data is laid out before (Unix ms).
    pub now: i64,
}

/// What the scenario needs to know about the seeded data.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The job holding a tenth of the log lines.
    pub big_job: String,
    /// Its number of lines (its last seq).
    pub big_job_lines: u64,
    /// Lines of every other job.
    pub lines_per_job: u64,
}

/// The id of seeded host `i`.
pub fn host_id(i: u64) -> String {
    format!("00000000-0000-7000-8000-{i:012}")
}

/// The id of seeded job `j`.
pub fn job_id(j: u64) -> String {
    format!("00000000-0000-7000-9000-{j:012}")
}

/// The label every seeded host carries: `env` is `prod` on 70 % of the
/// hosts, `staging` on 20 % and `dev` on 10 %.
pub const LABEL_FILTER: (&str, &str) = ("env", "staging");

impl Plan {
    /// The seeded job with the long log.
    fn big_job(&self) -> u64 {
        self.jobs / 2
    }

    fn big_job_lines(&self) -> u64 {
        if self.jobs == 0 {
            0
        } else {
            self.log_lines / 10
        }
    }

    fn lines_per_job(&self) -> u64 {
        match self.jobs {
            0 | 1 => 0,
            n => (self.log_lines - self.big_job_lines()) / (n - 1),
        }
    }

    /// Milliseconds between two seeded jobs.
    fn step_ms(&self) -> i64 {
        SPAN_MS / i64::try_from(self.jobs.max(1)).unwrap_or(i64::MAX)
    }

    fn t0(&self) -> i64 {
        self.now - SPAN_MS
    }
}

/// SQL spelling that differs between the backends.
struct Dialect {
    postgres: bool,
}

impl Dialect {
    /// `expr` as twelve decimal digits.
    fn pad(&self, expr: &str) -> String {
        if self.postgres {
            format!("lpad(CAST({expr} AS TEXT), 12, '0')")
        } else {
            format!("substr('000000000000' || ({expr}), -12, 12)")
        }
    }

    /// A CTE `name(col)` counting from `from` to `to` inclusive.
    fn series(&self, name: &str, col: &str, from: u64, to: u64) -> String {
        format!(
            "{name}({col}) AS (SELECT CAST({from} AS BIGINT) UNION ALL \
             SELECT {col} + 1 FROM {name} WHERE {col} < {to})"
        )
    }

    fn id(&self, prefix: &str, expr: &str) -> String {
        format!("'{prefix}' || {}", self.pad(expr))
    }
}

fn exec(conn: &mut DbConnection, sql: &str) -> anyhow::Result<usize> {
    diesel::sql_query(sql).execute(conn).with_context(|| {
        format!(
            "seeding failed: {}",
            sql.chars().take(120).collect::<String>()
        )
    })
}

/// Fills an empty, migrated database; returns what was made.
pub fn run(conn: &mut DbConnection, plan: &Plan) -> anyhow::Result<Seeded> {
    let d = Dialect {
        postgres: store::backend_name(conn) == "postgres",
    };
    if plan.hosts == 0 {
        anyhow::bail!("seeding needs at least one host");
    }
    seed_hosts(conn, &d, plan)?;
    if d.postgres {
        // One transaction: the trigger is never left off.
        conn.transaction(|conn| -> anyhow::Result<()> {
            exec(conn, "ALTER TABLE jobs DISABLE TRIGGER jobs_summaries")?;
            seed_jobs(conn, &d, plan)?;
            exec(conn, "ALTER TABLE jobs ENABLE TRIGGER jobs_summaries")?;
            rebuild_summaries(conn)
        })?;
    } else {
        seed_jobs(conn, &d, plan)?;
    }
    seed_logs(conn, &d, plan)?;
    // The server fills a bulk-loaded host's sort key when it starts: done
    // here instead, so that its 10,000 updates are not dead rows left
    // behind the vacuum below (they made PostgreSQL's host scans 1.5-2×
    // slower in the measured pages).
    store::hosts::fill_sort_keys(conn)?;
    if d.postgres {
        // A database that grew over months has been vacuumed and analysed
        // by autovacuum; a bulk-loaded one has not: no statistics, and no
        // visibility map, so index-only scans read the table too. Settle
        // it as autovacuum would.
        exec(conn, "VACUUM (ANALYZE)")?;
    }
    Ok(Seeded {
        big_job: job_id(plan.big_job()),
        big_job_lines: plan.big_job_lines(),
        lines_per_job: plan.lines_per_job(),
    })
}

fn seed_hosts(conn: &mut DbConnection, d: &Dialect, plan: &Plan) -> anyhow::Result<()> {
    let last = plan.hosts - 1;
    let series = d.series("hn", "i", 0, last);
    let host = d.id("00000000-0000-7000-8000-", "i");
    let group = d.id("00000000-0000-7000-8001-", "i");
    let schedule = d.id("00000000-0000-7000-8002-", "i");
    let now = plan.now;
    exec(
        conn,
        &format!(
            "INSERT INTO hosts (id, hostname, labels, os, arch, agent_version, restic_version, \
             capabilities, agent_token_hash, online, last_seen_at, enrolled_at, updated_at) \
             WITH RECURSIVE {series} \
             SELECT {host}, 'web-' || CAST(i + 1 AS TEXT), \
             CASE WHEN i % 10 < 7 THEN '{{\"env\":\"prod\",\"role\":\"web\"}}' \
                  WHEN i % 10 < 9 THEN '{{\"env\":\"staging\",\"role\":\"web\"}}' \
                  ELSE '{{\"env\":\"dev\",\"role\":\"db\"}}' END, \
             'linux', 'x86_64', '0.1.0', '0.17.3', '[]', 'seed-' || {pad}, \
             (i % 10) <> 3, {now} - (i % 1000) * 1000, {t0}, {now} FROM hn",
            pad = d.pad("i"),
            t0 = plan.t0(),
        ),
    )?;
    exec(
        conn,
        &format!(
            "INSERT INTO host_schedule_version (host_id, version, pushed_version, acked_version) \
             WITH RECURSIVE {series} SELECT {host}, 1, 1, 1 FROM hn"
        ),
    )?;
    exec(
        conn,
        &format!(
            "INSERT INTO source_groups (id, host_id, name, includes, excludes, retention_policy, \
             retry_max, retry_backoff_seconds, created_at, updated_at) \
             WITH RECURSIVE {series} SELECT {group}, {host}, 'system', '[\"/etc\",\"/home\"]', \
             '[\"*.tmp\"]', '{{\"keep_daily\":7,\"keep_weekly\":4}}', 2, 300, {t0}, {t0} FROM hn",
            t0 = plan.t0(),
        ),
    )?;
    exec(
        conn,
        &format!(
            "INSERT INTO schedules (id, host_id, cron_expr, enabled, created_at, updated_at) \
             WITH RECURSIVE {series} SELECT {schedule}, {host}, '0 2 * * *', (1 = 1), {t0}, {t0} \
             FROM hn",
            t0 = plan.t0(),
        ),
    )?;
    exec(
        conn,
        &format!(
            "INSERT INTO schedule_source_groups (schedule_id, source_group_id) \
             WITH RECURSIVE {series} SELECT {schedule}, {group} FROM hn"
        ),
    )?;
    // One host in 50 missed last night's run.
    let missed = d.id("00000000-0000-7000-8003-", "i");
    exec(
        conn,
        &format!(
            "INSERT INTO missed_runs (id, host_id, schedule_id, scheduled_at, detected_at) \
             WITH RECURSIVE {series} SELECT {missed}, {host}, {schedule}, {at}, {now} \
             FROM hn WHERE i % 50 = 5",
            at = now - 3_600_000,
        ),
    )?;
    Ok(())
}

fn seed_jobs(conn: &mut DbConnection, d: &Dialect, plan: &Plan) -> anyhow::Result<()> {
    let hosts = plan.hosts;
    let jobs = plan.jobs;
    let step = plan.step_ms();
    let t0 = plan.t0();
    let per = plan.lines_per_job();
    let big = plan.big_job();
    let big_lines = plan.big_job_lines();
    let host = d.id("00000000-0000-7000-8000-", &format!("j % {hosts}"));
    let group = d.id("00000000-0000-7000-8001-", &format!("j % {hosts}"));
    let schedule = d.id("00000000-0000-7000-8002-", &format!("j % {hosts}"));
    let job = d.id("00000000-0000-7000-9000-", "j");
    // The newest 20 jobs run; one host in 100 fails every backup (never
    // backed up); one in 50 failed its latest round; about 4 % fail and
    // 1 % are cancelled at random; every tenth job of a host is a forget.
    let status = format!(
        "CASE WHEN j >= {running} THEN 'running' \
              WHEN (j % {hosts}) % 100 = 2 THEN 'failed' \
              WHEN (j % {hosts}) % 50 = 1 AND j >= {last_round} THEN 'failed' \
              WHEN (j * 7919) % 23 = 0 THEN 'failed' \
              WHEN (j * 7919) % 97 = 1 THEN 'cancelled' \
              ELSE 'succeeded' END",
        running = jobs.saturating_sub(20),
        last_round = jobs.saturating_sub(hosts),
    );
    let kind = format!("CASE WHEN (j / {hosts}) % 10 = 9 THEN 'forget' ELSE 'backup' END");
    let mut from = 0;
    while from < jobs {
        let to = (from + JOBS_PER_STATEMENT).min(jobs) - 1;
        let series = d.series("jn", "j", from, to);
        exec(
            conn,
            &format!(
                "INSERT INTO jobs (id, host_id, kind, status, \"trigger\", source_group_id, tag, \
                 includes, excludes, retention_policy, args, schedule_id, scheduled_at, attempt, \
                 created_at, dispatched_at, accepted_at, started_at, finished_at, exit_code, \
                 error, stats, last_log_seq) \
                 WITH RECURSIVE {series}, \
                 k(j, st, kd, at) AS (SELECT j, {status}, {kind}, {t0} + j * {step} FROM jn) \
                 SELECT {job}, {host}, kd, st, 'schedule', {group}, 'system', \
                 '[\"/etc\",\"/home\"]', '[\"*.tmp\"]', \
                 CASE WHEN kd = 'forget' THEN '{{\"keep_daily\":7}}' END, '[]', {schedule}, at, 1, \
                 at, at + 100, at + 150, at + 200, \
                 CASE WHEN st <> 'running' THEN at + 60000 END, \
                 CASE WHEN st = 'succeeded' THEN 0 WHEN st = 'failed' THEN 1 END, \
                 CASE WHEN st = 'failed' THEN 'restic exited with code 1: repository is locked' END, \
                 CASE WHEN st = 'succeeded' AND kd = 'backup' THEN \
                   '{{\"files_new\":12,\"files_changed\":3,\"data_added\":1048576,\
                   \"total_bytes_processed\":73400320,\"total_duration\":4.2,\
                   \"snapshot_id\":\"4f2c8d1e\"}}' END, \
                 CASE WHEN j = {big} THEN {big_lines} ELSE {per} END \
                 FROM k"
            ),
        )?;
        from = to + 1;
    }
    Ok(())
}

/// Writes the summary rows the `jobs_summaries` trigger keeps (see
/// `migrations/postgres/2026-12-03-000001_fleet_summary`) from the jobs in
/// one pass each: jobs per kind and status, jobs ended per hour, each
/// source group's latest finished backup and newest success, and each
/// host's newest successful backup. The tables must hold nothing the
/// trigger wrote (true after seeding with it off).
fn rebuild_summaries(conn: &mut DbConnection) -> anyhow::Result<()> {
    const DONE: &str = "status IN ('succeeded', 'failed', 'cancelled')";
    const SUCCESS: &str = "kind = 'backup' AND status = 'succeeded'";
    exec(
        conn,
        "INSERT INTO job_counts (kind, status, n) \
         SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status",
    )?;
    exec(
        conn,
        &format!(
            "INSERT INTO job_outcomes_hourly (hour, kind, status, n) \
             SELECT finished_at / 3600000, kind, status, COUNT(*) FROM jobs \
             WHERE {DONE} AND finished_at IS NOT NULL \
             GROUP BY finished_at / 3600000, kind, status"
        ),
    )?;
    exec(
        conn,
        &format!(
            "INSERT INTO backup_latest (host_id, source_group_id, job_id, status, warning, \
             finished_at, tag, last_success_at) \
             SELECT j.host_id, j.source_group_id, j.id, j.status, j.warning IS NOT NULL, \
             j.finished_at, j.tag, s.at \
             FROM (SELECT MAX(id) AS id FROM jobs \
                   WHERE kind = 'backup' AND {DONE} AND source_group_id IS NOT NULL \
                   GROUP BY host_id, source_group_id) l \
             JOIN jobs j ON j.id = l.id \
             LEFT JOIN (SELECT host_id, source_group_id, \
                        MAX(COALESCE(finished_at, created_at)) AS at \
                        FROM jobs WHERE {SUCCESS} GROUP BY host_id, source_group_id) s \
             ON s.host_id = j.host_id AND s.source_group_id = j.source_group_id"
        ),
    )?;
    exec(
        conn,
        &format!(
            "UPDATE hosts SET last_backup_at = s.at \
             FROM (SELECT host_id, MAX(COALESCE(finished_at, created_at)) AS at \
                   FROM jobs WHERE {SUCCESS} GROUP BY host_id) s \
             WHERE s.host_id = hosts.id"
        ),
    )?;
    Ok(())
}

/// A log line's text: about 100 bytes, like restic's verbose output.
fn payload(j: &str, s: &str) -> String {
    format!(
        "'[' || CAST({s} AS TEXT) || '] processed /srv/data/set-' || CAST({j} % 97 AS TEXT) \
         || '/file-' || CAST({s} AS TEXT) || '.bin: 48.213 MiB, unchanged since the last snapshot'"
    )
}

fn seed_logs(conn: &mut DbConnection, d: &Dialect, plan: &Plan) -> anyhow::Result<()> {
    let per = plan.lines_per_job();
    let step = plan.step_ms();
    let t0 = plan.t0();
    let job = d.id("00000000-0000-7000-9000-", "j");
    if let Some(jobs_per_statement) = LINES_PER_STATEMENT.checked_div(per) {
        let jobs_per_statement = jobs_per_statement.max(1);
        let mut from = 0;
        while from < plan.jobs {
            let to = (from + jobs_per_statement).min(plan.jobs) - 1;
            let jn = d.series("jn", "j", from, to);
            let sn = d.series("sn", "s", 1, per);
            exec(
                conn,
                &format!(
                    "INSERT INTO job_logs (job_id, seq, ts, stream, payload) \
                     WITH RECURSIVE {jn}, {sn} \
                     SELECT {job}, s, {t0} + j * {step} + 200 + s, \
                     CASE WHEN s % 50 = 0 THEN 'stderr' ELSE 'stdout' END, {payload} \
                     FROM jn CROSS JOIN sn WHERE j <> {big}",
                    payload = payload("j", "s"),
                    big = plan.big_job(),
                ),
            )?;
            from = to + 1;
        }
    }
    let lines = plan.big_job_lines();
    let big = plan.big_job();
    let mut from = 1;
    while from <= lines {
        let to = (from + LINES_PER_STATEMENT - 1).min(lines);
        let sn = d.series("sn", "s", from, to);
        exec(
            conn,
            &format!(
                "INSERT INTO job_logs (job_id, seq, ts, stream, payload) \
                 WITH RECURSIVE {sn} \
                 SELECT '{id}', s, {t0} + CAST({big} AS BIGINT) * {step} + 200 + s / 100, 'stdout', {payload} \
                 FROM sn",
                id = job_id(big),
                payload = payload(&big.to_string(), "s"),
            ),
        )?;
        from = to + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded ids are UUID-shaped, sort in number order, and the plan
    /// splits the lines between the big job and the rest.
    #[test]
    fn ids_and_plan() {
        assert_eq!(host_id(7), "00000000-0000-7000-8000-000000000007");
        assert!(job_id(9) < job_id(10));
        assert!(uuid::Uuid::parse_str(&job_id(123)).is_ok());
        let plan = Plan {
            hosts: 10_000,
            jobs: 1_000_000,
            log_lines: 10_000_000,
            now: 0,
        };
        assert_eq!(plan.big_job_lines(), 1_000_000);
        assert_eq!(plan.lines_per_job(), 9);
        assert_eq!(plan.big_job(), 500_000);
    }

    fn small_plan() -> Plan {
        Plan {
            hosts: 20,
            jobs: 200,
            log_lines: 2000,
            now: 100 * 86_400_000,
        }
    }

    /// The number a query (`… AS n`) answers.
    fn number(conn: &mut DbConnection, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(sql).get_result::<N>(conn).unwrap().n
    }

    fn count(conn: &mut DbConnection, table: &str) -> i64 {
        number(conn, &format!("SELECT COUNT(*) AS n FROM {table}"))
    }

    /// The summary rows, each as one line of text, sorted.
    fn summaries(conn: &mut DbConnection) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Line {
            #[diesel(sql_type = diesel::sql_types::Text)]
            line: String,
        }
        let tables = [
            "SELECT 'count ' || kind || ' ' || status || ' ' || CAST(n AS TEXT) AS line \
             FROM job_counts",
            "SELECT 'hour ' || CAST(hour AS TEXT) || ' ' || kind || ' ' || status || ' ' \
             || CAST(n AS TEXT) AS line FROM job_outcomes_hourly",
            "SELECT 'latest ' || host_id || ' ' || source_group_id || ' ' || job_id || ' ' \
             || status || ' ' || CASE WHEN warning THEN 'w' ELSE '-' END || ' ' \
             || COALESCE(CAST(finished_at AS TEXT), '-') || ' ' \
             || COALESCE(CAST(last_success_at AS TEXT), '-') AS line FROM backup_latest",
            "SELECT 'host ' || id || ' ' || COALESCE(CAST(last_backup_at AS TEXT), '-') AS line \
             FROM hosts",
        ];
        let mut lines: Vec<String> = tables
            .iter()
            .flat_map(|sql| diesel::sql_query(*sql).load::<Line>(conn).unwrap())
            .map(|l| l.line)
            .collect();
        lines.sort();
        lines
    }

    /// The whole plan runs on an empty SQLite database and leaves the
    /// counts it promised.
    #[test]
    fn seeds_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let pool = store::connect(dir.path().join("db").to_str().unwrap(), 1).unwrap();
        let mut conn = pool.get().unwrap();
        let seeded = run(&mut conn, &small_plan()).unwrap();
        assert_eq!(count(&mut conn, "hosts"), 20);
        assert_eq!(count(&mut conn, "jobs"), 200);
        let lines = 200 + (199 * 9);
        assert_eq!(count(&mut conn, "job_logs"), lines);
        assert_eq!(seeded.big_job_lines, 200);
        let big = store::jobs::get(&mut conn, &seeded.big_job)
            .unwrap()
            .unwrap();
        assert_eq!(big.last_log_seq, 200);
        let last = store::job_logs::list_after(&mut conn, &seeded.big_job, 190, 100).unwrap();
        assert_eq!(last.len(), 10);
    }

    /// On PostgreSQL (`RESTIC_MANAGER_TEST_POSTGRES_URL`), where the jobs
    /// go in with the summary trigger off, the summary rows built after
    /// are those the trigger keeps on SQLite for the same plan, and the
    /// trigger is on again.
    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_summaries_equal_the_triggers() {
        use diesel::connection::SimpleConnection;
        let Some(admin_url) = std::env::var("RESTIC_MANAGER_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        else {
            assert!(
                std::env::var_os("RESTIC_MANAGER_REQUIRE_POSTGRES").is_none(),
                "PostgreSQL is required but RESTIC_MANAGER_TEST_POSTGRES_URL is unset"
            );
            eprintln!("seed on postgres skipped: RESTIC_MANAGER_TEST_POSTGRES_URL unset");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let pool = store::connect(dir.path().join("db").to_str().unwrap(), 1).unwrap();
        let mut sqlite = pool.get().unwrap();
        run(&mut sqlite, &small_plan()).unwrap();
        let expected = summaries(&mut sqlite);
        assert!(expected.iter().any(|l| l.starts_with("latest ")));

        let name = format!("rm_seed_{}", uuid::Uuid::new_v4().simple());
        let mut admin = diesel::PgConnection::establish(&admin_url).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        // The database name is the URL's path, before any query.
        let (base, query) = admin_url.split_once('?').unwrap_or((&admin_url, ""));
        let (server, _) = base.rsplit_once('/').unwrap();
        let url = format!(
            "{server}/{name}{}{query}",
            if query.is_empty() { "" } else { "?" }
        );
        let outcome = std::panic::catch_unwind(|| {
            let pool = store::connect(&url, 1).unwrap();
            let mut pg = pool.get().unwrap();
            run(&mut pg, &small_plan()).unwrap();
            assert_eq!(summaries(&mut pg), expected);
            assert_eq!(count(&mut pg, "job_logs"), 200 + 199 * 9);
            // The trigger counts a new job again.
            diesel::sql_query("DELETE FROM jobs WHERE id = (SELECT MIN(id) FROM jobs)")
                .execute(&mut **pg)
                .unwrap();
            let total = number(
                &mut pg,
                "SELECT CAST(SUM(n) AS BIGINT) AS n FROM job_counts",
            );
            assert_eq!(total, 199);
        });
        admin
            .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
            .unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}
