//! `store::prepared`: the hot writes that diesel sends unprepared (every
//! `UPDATE`, inserts with optional columns, raw statements) are prepared
//! once per connection and text, and a changeset that leaves out a field
//! (another text) gets a statement of its own, never the other's.

use diesel::prelude::*;
use diesel::sql_types::Text;
use restic_manager::store::{hosts, jobs, DbConnection, JobKind, JobStatus};

use super::hellos::hello;
use super::{add_host, add_job, finished, for_each_backend, Count, NOW};

/// How many statements this connection holds prepared whose text starts
/// with `prefix` (PostgreSQL lists a connection's own in
/// `pg_prepared_statements`).
fn prepared_like(c: &mut DbConnection, prefix: &str) -> i64 {
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_prepared_statements WHERE starts_with(statement, $1)",
    )
    .bind::<Text, _>(prefix)
    .get_result::<Count>(c)
    .unwrap()
    .n
}

#[test]
fn hot_writes_are_prepared_once_per_connection_and_text() {
    for_each_backend("prepared_writes", |pool, backend| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "prepared");
        let host_id = host.id.clone();
        let [a, b, d] = [1, 2, 3].map(|i| add_job(c, &host.id, JobKind::Backup, NOW + i));

        // The same text with other values: each row gets its own values.
        for (job, at) in [(&a, NOW + 10), (&b, NOW + 20), (&d, NOW + 30)] {
            assert!(jobs::mark_dispatched(c, &job.id, at).unwrap());
        }
        assert!(jobs::mark_started(c, &a.id, NOW + 40).unwrap());
        assert!(jobs::mark_started(c, &b.id, NOW + 50).unwrap());
        assert!(
            !jobs::mark_dispatched(c, &a.id, NOW + 99).unwrap(),
            "running, not queued: unchanged"
        );

        // Two texts: a success leaves out `error`, a failure sets it.
        let ok = jobs::finish_for_host(
            c,
            &host_id,
            &a.id,
            &finished(JobStatus::Succeeded, NOW + 60),
        )
        .unwrap();
        let failed =
            jobs::finish_for_host(c, &host_id, &b.id, &finished(JobStatus::Failed, NOW + 70))
                .unwrap();
        let again = jobs::finish_for_host(
            c,
            &host_id,
            &d.id,
            &finished(JobStatus::Succeeded, NOW + 80),
        )
        .unwrap();
        assert!(ok.applied() && failed.applied() && again.applied());

        let read = |c: &mut DbConnection, id: &str| jobs::get(c, id).unwrap().unwrap();
        let (ra, rb, rd) = (read(c, &a.id), read(c, &b.id), read(c, &d.id));
        assert_eq!(
            [ra.dispatched_at, rb.dispatched_at, rd.dispatched_at],
            [Some(NOW + 10), Some(NOW + 20), Some(NOW + 30)]
        );
        assert_eq!(
            (ra.status, ra.started_at, ra.finished_at),
            (JobStatus::Succeeded, Some(NOW + 40), Some(NOW + 60))
        );
        assert_eq!(
            (rb.status, rb.error.as_deref(), rb.finished_at),
            (JobStatus::Failed, Some("boom"), Some(NOW + 70))
        );
        assert_eq!(
            (rd.status, rd.error, rd.started_at),
            (JobStatus::Succeeded, None, None)
        );

        if backend == "postgres" {
            assert_eq!(
                prepared_like(c, r#"UPDATE "jobs" SET "dispatched_at""#),
                1,
                "one statement for four executions"
            );
            assert_eq!(
                prepared_like(c, r#"UPDATE "jobs" SET "status""#),
                3,
                "started; finished with and without error"
            );
            assert_eq!(
                prepared_like(c, r#"INSERT INTO "jobs""#),
                1,
                "three inserts of one shape"
            );
        }
    });
}

/// A raw statement of PostgreSQL's (a batch of hellos) is prepared once,
/// and each execution writes its own values.
#[test]
fn a_raw_batch_statement_is_prepared_once() {
    for_each_backend("prepared_raw", |pool, backend| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let hosts_ = [add_host(c, "r1"), add_host(c, "r2")];
        for (round, version) in [(1, "1.0"), (2, "2.0")] {
            let hello = hello(&format!("renamed-{round}"), Some(version), None);
            let batch: Vec<_> = hosts_
                .iter()
                .map(|h| (h.id.as_str(), &hello, NOW + round))
                .collect();
            let rows = hosts::update_from_hellos(c, &batch).unwrap();
            for row in rows {
                let row = row.expect("written");
                assert_eq!(row.agent_version.as_deref(), Some(version));
                assert_eq!(row.hostname, format!("renamed-{round}"));
                assert_eq!(row.last_seen_at, Some(NOW + round));
            }
        }
        if backend == "postgres" {
            assert_eq!(prepared_like(c, "UPDATE hosts AS h SET hostname"), 1);
        }
    });
}

/// A job and its audit row: both written, in one statement on PostgreSQL
/// (`WITH first AS (INSERT INTO audit_log …) INSERT INTO jobs …`), the
/// statement prepared once; a job refused (its host unknown) writes no
/// audit row either.
#[test]
fn a_job_and_its_audit_row_in_one_statement() {
    use restic_manager::store::models::NewJob;
    use restic_manager::store::{audit, JobTrigger};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    for_each_backend("jobs_insert_audited", |pool, backend| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "audited");
        let rows_of = |c: &mut DbConnection, target: &str| {
            audit::list(
                c,
                &audit::AuditFilter {
                    target: Some(target.to_owned()),
                    limit: 10,
                    ..Default::default()
                },
            )
            .unwrap()
            .items
        };
        let statements = Arc::new(AtomicUsize::new(0));
        let mut written = Vec::new();
        for i in 0..2 {
            let new = NewJob::new(
                restic_manager::store::new_id(),
                host.id.as_str(),
                JobKind::Check,
                JobTrigger::Manual,
                NOW + i,
            );
            let entry = audit::entry(
                NOW + i,
                "admin",
                Some("127.0.0.1"),
                "job.create",
                Some(new.id.as_str()),
                Some(serde_json::json!({"kind": "check"})),
            );
            let counted = Arc::clone(&statements);
            c.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
                if let diesel::connection::InstrumentationEvent::StartQuery { .. } = event {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            });
            statements.store(0, Ordering::Relaxed);
            let job = jobs::insert_audited(c, &new, &entry).unwrap();
            let sent = statements.load(Ordering::Relaxed);
            c.set_instrumentation(|_: diesel::connection::InstrumentationEvent<'_>| {});
            assert_eq!(sent, if backend == "sqlite" { 2 } else { 1 }, "{backend}");
            assert_eq!(job.status, JobStatus::Queued);
            assert_eq!(job.id, new.id);
            let rows = rows_of(c, job.id.as_str());
            assert_eq!(rows.len(), 1, "{backend}");
            assert_eq!(rows[0].actor, "admin");
            assert_eq!(rows[0].source_addr.as_deref(), Some("127.0.0.1"));
            written.push(job);
        }
        if backend == "postgres" {
            assert_eq!(prepared_like(c, "WITH first AS (INSERT INTO"), 1);
        }
        // A job of an unknown host is refused, and so is its audit row.
        let orphan = NewJob::new(
            restic_manager::store::new_id(),
            "no-such-host",
            JobKind::Check,
            JobTrigger::Manual,
            NOW,
        );
        let entry = audit::entry(
            NOW,
            "admin",
            None,
            "job.create",
            Some(orphan.id.as_str()),
            None,
        );
        let written_before = rows_of(c, orphan.id.as_str()).len();
        assert!(c
            .transaction(|c| jobs::insert_audited(c, &orphan, &entry))
            .is_err());
        assert_eq!(written_before, 0);
        assert!(rows_of(c, orphan.id.as_str()).is_empty(), "{backend}");
        assert!(jobs::get(c, orphan.id.as_str()).unwrap().is_none());
    });
}
