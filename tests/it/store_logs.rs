//! Store tests of the agent channel's log ingest
//! (`store::channel::insert_logs_for_hosts`), on SQLite and PostgreSQL
//! (where it goes through `COPY … FROM STDIN` into a staging table, issue
//! 19): each line kept only for its own host's job, duplicates skipped
//! whether stored before or repeated in the batch, payloads stored byte
//! for byte, `last_log_seq` raised and never lowered, and two batches in
//! one transaction.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use restic_manager::store::channel::{insert_logs_for_hosts, HostLogLine};
use restic_manager::store::job_logs::{self, LogBatchOutcome};
use restic_manager::store::models::NewJobLog;
use restic_manager::store::{self, jobs, JobKind};

use crate::store::{add_host, add_job, for_each_backend, log_line, NOW};

fn from(host_id: &str, line: NewJobLog) -> HostLogLine {
    HostLogLine {
        host_id: host_id.to_owned(),
        line,
    }
}

/// A batch from two hosts: a line naming the other host's job is refused
/// (counted with unknown jobs), a stored line and a line repeated in the
/// batch are skipped, and each job's `last_log_seq` follows its own lines.
#[test]
fn host_scoped_batches_skip_duplicates_and_foreign_jobs() {
    for_each_backend("host_scoped_batches", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let web = add_host(c, "web");
        let db = add_host(c, "db");
        let web_job = add_job(c, &web.id, JobKind::Backup, NOW);
        let db_job = add_job(c, &db.id, JobKind::Backup, NOW + 1);

        let first: Vec<HostLogLine> = (1..=3)
            .map(|s| from(&web.id, log_line(&web_job.id, s)))
            .chain([from(&db.id, log_line(&db_job.id, 1))])
            .collect();
        assert_eq!(
            insert_logs_for_hosts(c, &first).unwrap(),
            LogBatchOutcome {
                inserted: 4,
                duplicates: 0,
                unknown_job: 0
            }
        );

        let mut forged = log_line(&db_job.id, 2);
        forged.payload = "written by web into db's job".to_owned();
        let second = vec![
            from(&web.id, log_line(&web_job.id, 3)), // stored already
            from(&web.id, log_line(&web_job.id, 4)),
            from(&web.id, log_line(&web_job.id, 4)), // repeated in the batch
            from(&web.id, forged),                   // another host's job
            from(&web.id, log_line("ghost-job", 1)), // no such job
        ];
        assert_eq!(
            insert_logs_for_hosts(c, &second).unwrap(),
            LogBatchOutcome {
                inserted: 1,
                duplicates: 2,
                unknown_job: 2
            }
        );
        let db_lines = job_logs::list_after(c, &db_job.id, 0, 100).unwrap();
        assert_eq!(db_lines.len(), 1, "the forged line was not stored");
        assert_eq!(jobs::get(c, &db_job.id).unwrap().unwrap().last_log_seq, 1);
        assert_eq!(jobs::get(c, &web_job.id).unwrap().unwrap().last_log_seq, 4);

        // A late, lower seq is stored but does not lower last_log_seq.
        let late = vec![
            from(&db.id, log_line(&db_job.id, 7)),
            from(&db.id, {
                let mut l = log_line(&db_job.id, 5);
                l.payload = "late".to_owned();
                l
            }),
        ];
        assert_eq!(insert_logs_for_hosts(c, &late).unwrap().inserted, 2);
        assert_eq!(jobs::get(c, &db_job.id).unwrap().unwrap().last_log_seq, 7);
        assert_eq!(insert_logs_for_hosts(c, &[]).unwrap(), Default::default());
    });
}

/// Payloads come back byte for byte, whatever they hold (COPY's format
/// has its own escapes: tabs, newlines, backslashes, quotes, non-ASCII).
#[test]
fn log_payloads_are_stored_verbatim() {
    for_each_backend("log_payloads_verbatim", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let job = add_job(c, &host.id, JobKind::Backup, NOW);
        let payloads = [
            "tab\there, newline\nthere, cr\r",
            "back\\slash \\N \\. and 'quotes' \"too\"",
            "",
            "ünïcødé ✓ 日本",
            "a,b;c|d",
        ];
        let batch: Vec<HostLogLine> = payloads
            .iter()
            .zip(1..)
            .map(|(p, seq)| {
                let mut l = log_line(&job.id, seq);
                l.payload = (*p).to_owned();
                from(&host.id, l)
            })
            .collect();
        assert_eq!(insert_logs_for_hosts(c, &batch).unwrap().inserted, 5);
        let stored = job_logs::list_after(c, &job.id, 0, 100).unwrap();
        let got: Vec<&str> = stored.iter().map(|l| l.payload.as_str()).collect();
        assert_eq!(got, payloads);
        assert_eq!(stored[1].stream, store::LogStream::Stderr);
        assert_eq!(stored[1].ts, NOW + 2);
    });
}

/// Two batches in one transaction (the staging table is emptied only at
/// commit): the second stores only its own lines, and a large batch over
/// many jobs lands whole.
#[test]
fn batches_in_one_transaction_and_large_batches() {
    for_each_backend("log_batches_one_transaction", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let jobs_: Vec<_> = (0..50)
            .map(|i| add_job(c, &host.id, JobKind::Backup, NOW + i).id)
            .collect();
        let (a, b) = store::write_transaction(c, |c| {
            let first: Vec<HostLogLine> = (1..=10)
                .map(|s| from(&host.id, log_line(&jobs_[0], s)))
                .collect();
            let second: Vec<HostLogLine> = (11..=15)
                .map(|s| from(&host.id, log_line(&jobs_[0], s)))
                .collect();
            Ok::<_, diesel::result::Error>((
                insert_logs_for_hosts(c, &first)?,
                insert_logs_for_hosts(c, &second)?,
            ))
        })
        .unwrap();
        assert_eq!((a.inserted, a.duplicates), (10, 0));
        assert_eq!((b.inserted, b.duplicates), (5, 0));

        let big: Vec<HostLogLine> = (0..10_000)
            .map(|i| from(&host.id, log_line(&jobs_[i % 50], 100 + i as i64)))
            .collect();
        let outcome = insert_logs_for_hosts(c, &big).unwrap();
        assert_eq!(outcome.inserted, 10_000);
        assert_eq!(insert_logs_for_hosts(c, &big).unwrap().duplicates, 10_000);
        assert_eq!(
            jobs::get(c, &jobs_[49]).unwrap().unwrap().last_log_seq,
            100 + 9_999
        );
        assert_eq!(
            job_logs::count_after(c, &jobs_[0], 0).unwrap(),
            15 + 200,
            "job 0's two small batches and its share of the large one"
        );
    });
}

/// A job deleted while a batch of its lines is being written leaves no
/// line behind: on PostgreSQL the batch locks its jobs (there is no
/// foreign key checked per line, issue 19), so the delete waits for the
/// batch's commit and then removes the lines with the job; on SQLite the
/// foreign key does it (one writer at a time, so the two run in turn).
#[test]
fn a_job_deleted_while_its_lines_are_written_leaves_none() {
    use diesel::prelude::*;

    for_each_backend("deleted_while_written", |pool, backend| {
        let mut conn = pool.get().unwrap();
        let host = add_host(&mut conn, "h");
        let job = add_job(&mut conn, &host.id, JobKind::Backup, NOW);
        let lines: Vec<HostLogLine> = (1..=50)
            .map(|s| from(&host.id, log_line(&job.id, s)))
            .collect();
        let deleter = conn
            .transaction(|c| {
                let stored = insert_logs_for_hosts(c, &lines)?;
                assert_eq!(stored.inserted, 50);
                if backend != "postgres" {
                    return Ok::<_, diesel::result::Error>(None);
                }
                let (pool, id) = (pool.clone(), job.id.to_string());
                let deleter = std::thread::spawn(move || {
                    let mut other = pool.get().unwrap();
                    jobs::delete(&mut other, &id).unwrap()
                });
                // The delete waits on the batch's lock until this commits.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                loop {
                    let waiting = diesel::sql_query(
                        "SELECT count(*) AS n FROM pg_stat_activity \
                         WHERE wait_event_type = 'Lock' AND datname = current_database()",
                    )
                    .get_result::<crate::store::Count>(c)?;
                    if waiting.n > 0 {
                        break;
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the delete never waited"
                    );
                    std::thread::yield_now();
                }
                Ok(Some(deleter))
            })
            .unwrap();
        let deleted = match deleter {
            Some(thread) => thread.join().unwrap(),
            None => jobs::delete(&mut conn, &job.id).unwrap(),
        };
        assert!(deleted);
        assert_eq!(job_logs::count_after(&mut conn, &job.id, 0).unwrap(), 0);
    });
}
