//! `store::prepared`: the hot writes that diesel sends unprepared (every
//! `UPDATE`, inserts with optional columns, raw statements) are prepared
//! once per connection and text, and a changeset that leaves out a field
//! (another text) gets a statement of its own, never the other's.

use diesel::prelude::*;
use diesel::sql_types::Text;
use restic_manager::store::{hosts, jobs, DbConnection, JobKind, JobStatus};

use super::hellos::hello;
use super::{add_host, add_job, finished, for_each_backend, plan_of, statements_of, Count, NOW};

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

/// A check job, its audit row and its rotation step: all written, in one
/// statement on PostgreSQL (`WITH w0 AS (INSERT INTO audit_log …), …
/// INSERT INTO jobs …`) prepared once, the rotation advancing as
/// `verification::rotate_check` advances it and keeping the last `n`
/// runs; a job refused (its host unknown) writes neither audit row nor
/// rotation, on PostgreSQL without a transaction.
#[test]
fn a_job_its_audit_row_and_its_check_step_in_one_statement() {
    use restic_manager::store::models::NewJob;
    use restic_manager::store::verification::{self, check_runs, CheckStep, RotationRow};
    use restic_manager::store::{audit, JobTrigger};

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
        let runs_of = |c: &mut DbConnection| -> Vec<(i64, i64, String)> {
            check_runs::table
                .filter(check_runs::host_id.eq(host.id.as_str()))
                .order(check_runs::run)
                .select((check_runs::run, check_runs::subset, check_runs::job_id))
                .load(c)
                .unwrap()
        };
        let mut written = Vec::new();
        // n = 2: the three checks read 1, 2, 1; the second job has none.
        for i in 0..4 {
            let mut new = NewJob::new(
                restic_manager::store::new_id(),
                host.id.as_str(),
                JobKind::Check,
                JobTrigger::Manual,
                NOW + i,
            );
            let step = (i != 1).then(|| {
                let prev = verification::rotation_of(c, host.id.as_str()).unwrap();
                CheckStep::after(prev, host.id.clone(), new.id.clone(), 2, NOW + i)
            });
            if let Some(step) = &step {
                new.args = step.args();
            }
            let entry = audit::entry(
                NOW + i,
                "admin",
                Some("127.0.0.1"),
                "job.create",
                Some(new.id.as_str()),
                Some(serde_json::json!({"kind": "check"})),
            );
            let (job, statements) = statements_of(c, |c| {
                jobs::insert_audited(c, &new, &entry, step.as_ref()).unwrap()
            });
            let sent = statements.len();
            if backend == "postgres" {
                assert_eq!(sent, 1, "{backend}");
            } else {
                // The job, the audit row; a step's update (the first one
                // also inserts), run and prune.
                let step_writes = match i {
                    0 => 4,
                    1 => 0,
                    _ => 3,
                };
                assert_eq!(sent, 2 + step_writes, "{backend}: check {i}");
            }
            assert_eq!(job.status, JobStatus::Queued);
            assert_eq!(job.id, new.id);
            assert_eq!(job.args, new.args, "{backend}");
            let rows = rows_of(c, job.id.as_str());
            assert_eq!(rows.len(), 1, "{backend}");
            assert_eq!(rows[0].actor, "admin");
            assert_eq!(rows[0].source_addr.as_deref(), Some("127.0.0.1"));
            written.push(job);
        }
        let args: Vec<Vec<String>> = written.iter().map(|j| j.args.clone()).collect();
        assert_eq!(
            args,
            vec![
                vec!["--read-data-subset=1/2".to_owned()],
                vec![],
                vec!["--read-data-subset=2/2".to_owned()],
                vec!["--read-data-subset=1/2".to_owned()],
            ],
            "{backend}"
        );
        let rotation = RotationRow {
            subsets: 2,
            next_subset: 2,
            runs: 3,
        };
        assert_eq!(
            verification::rotation_of(c, host.id.as_str()).unwrap(),
            Some(rotation),
            "{backend}"
        );
        // The last two runs are kept.
        let kept = vec![
            (2, 2, written[2].id.to_string()),
            (3, 1, written[3].id.to_string()),
        ];
        assert_eq!(runs_of(c), kept, "{backend}");
        if backend == "postgres" {
            assert_eq!(prepared_like(c, "WITH w0 AS (INSERT INTO"), 2);
        }

        // A job of an unknown host is refused, and so are its audit row
        // and its step: on PostgreSQL without a transaction around it.
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
        let prev = verification::rotation_of(c, host.id.as_str()).unwrap();
        let step = CheckStep::after(prev, host.id.clone(), orphan.id.clone(), 2, NOW + 9);
        let refused = if backend == "postgres" {
            jobs::insert_audited(c, &orphan, &entry, Some(&step))
        } else {
            c.transaction(|c| jobs::insert_audited(c, &orphan, &entry, Some(&step)))
        };
        assert!(refused.is_err(), "{backend}");
        assert!(rows_of(c, orphan.id.as_str()).is_empty(), "{backend}");
        assert!(jobs::get(c, orphan.id.as_str()).unwrap().is_none());
        assert_eq!(
            verification::rotation_of(c, host.id.as_str()).unwrap(),
            Some(rotation),
            "{backend}"
        );
        assert_eq!(runs_of(c), kept, "{backend}");
    });
}

/// A job list by status writes the status into its statement
/// (`prepared::TextLiteral`): PostgreSQL's generic plan of a bound status
/// thought every status a quarter of the jobs and walked the `created_at`
/// index for the few running ones (853 ms among 200,000 jobs); with the
/// status written, its plan looks the status up in an index, as SQLite's
/// does. The rows are the same either way.
#[test]
fn a_job_list_by_status_looks_the_status_up() {
    use restic_manager::store::jobs::JobFilter;

    for_each_backend("job_list_by_status", |pool, backend| {
        let mut conn = pool.get().unwrap();
        let c: &mut DbConnection = &mut conn;
        let host = add_host(c, "statuses");
        for i in 0..600 {
            add_job(c, &host.id, JobKind::Backup, NOW + i);
        }
        diesel::sql_query("UPDATE jobs SET status = 'succeeded'")
            .execute(c)
            .unwrap();
        let running: Vec<String> = (0..3)
            .map(|i| {
                let job = add_job(c, &host.id, JobKind::Backup, NOW + 1000 + i);
                assert!(jobs::mark_started(c, &job.id, NOW + 2000).unwrap());
                job.id.to_string()
            })
            .collect();
        diesel::sql_query("ANALYZE jobs").execute(c).unwrap();

        let filter = JobFilter {
            status: Some(JobStatus::Running),
            limit: 50,
            ..Default::default()
        };
        let (page, statements) = statements_of(c, |c| jobs::list(c, &filter).unwrap());
        let mut ids: Vec<String> = page.items.iter().map(|j| j.id.to_string()).collect();
        ids.sort();
        let mut want = running.clone();
        want.sort();
        assert_eq!(ids, want, "{backend}");
        assert_eq!(page.total, 3, "{backend}");

        let statement = &statements[0];
        assert!(statement.contains("'running'"), "{statement}");
        let plan = plan_of(c, statement, "");
        let looked_up = plan.iter().any(|l| {
            (l.contains("Index Cond") && l.contains("status = 'running'"))
                || (l.contains("INDEX jobs_status") && l.contains("status="))
        });
        assert!(looked_up, "{backend}: {plan:#?}");
    });
}
