//! Store tests of the snapshot catalog (`store::catalog`), each scenario
//! on SQLite and PostgreSQL: jobs queued from a snapshot report, chunks
//! ingested and completed, folders browsed directories first, the
//! substring search, `--catalog-keep`, forgotten snapshots, lost chunks,
//! a job that takes over from another, and the live-listing cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::DateTime;
use diesel::prelude::*;
use restic_manager::protocol::CatalogEntry;
use restic_manager::store::catalog::ingest::{self, Chunk, Completion};
use restic_manager::store::catalog::{browse, lifecycle, search, STATE_COMPLETE};
use restic_manager::store::models::NewSnapshot;
use restic_manager::store::{self, catalog, jobs, snapshots, DbConnection, JobKind, JobStatus};

use crate::store::{add_host, for_each_backend, NOW};

const HOUR: i64 = 3_600_000;

fn entry(path: &str, kind: &str, size: Option<u64>) -> CatalogEntry {
    CatalogEntry {
        path: path.to_owned(),
        kind: kind.to_owned(),
        size,
        mtime: DateTime::from_timestamp_millis(NOW),
        mode: Some(420),
    }
}

/// A snapshot in group `group` taken `age` hours before [`NOW`].
fn snapshot(id: &str, group: &str, age: i64) -> NewSnapshot {
    NewSnapshot {
        snapshot_id: id.to_owned(),
        short_id: id[..8].to_owned(),
        time: NOW - age * HOUR,
        hostname: "web-01".to_owned(),
        paths: vec!["/etc".to_owned()],
        tags: vec![group.to_string()],
        size_bytes: None,
        file_count: None,
    }
}

/// Stores a report and applies it to the catalog, as the writer does.
fn report(
    c: &mut DbConnection,
    host: &str,
    list: &[NewSnapshot],
    keep: usize,
) -> lifecycle::AfterReport {
    snapshots::replace_for_host(c, host, list, NOW).unwrap();
    lifecycle::after_report(c, host, keep, true, NOW).unwrap()
}

/// The entries of a small snapshot of `/etc`.
fn etc_tree(prefix: &str) -> Vec<CatalogEntry> {
    vec![
        entry("/etc", "dir", None),
        entry("/etc/hosts", "file", Some(220)),
        entry("/etc/nginx", "dir", None),
        entry(
            &format!("/etc/nginx/{prefix}NGINX.conf"),
            "file",
            Some(1000),
        ),
        entry("/etc/nginx/sites", "dir", None),
        entry("/etc/nginx/sites/default", "file", Some(10)),
        entry("/etc/localtime", "symlink", None),
        entry("/etc/a_b.txt", "file", Some(1)),
    ]
}

/// Ingests `entries` for `job` in chunks of 3 and completes it.
fn catalogue(
    c: &mut DbConnection,
    host: &str,
    snapshot_id: &str,
    job: &str,
    entries: &[CatalogEntry],
    keep: usize,
) -> Completion {
    let chunks: Vec<Chunk> = entries
        .chunks(3)
        .map(|part| Chunk {
            host_id: host.into(),
            job_id: job.into(),
            snapshot_id: snapshot_id.to_owned(),
            entries: part.to_vec(),
        })
        .collect();
    let appended = ingest::append_chunks(c, &chunks, NOW).unwrap();
    assert_eq!(appended.stored, entries.len());
    let reported = Some(entries.len() as u64);
    ingest::complete(
        c,
        &host.into(),
        snapshot_id,
        &job.into(),
        reported,
        keep,
        NOW,
    )
    .unwrap()
}

fn names(page: &store::Page<catalog::Entry>) -> Vec<String> {
    page.items.iter().map(|e| e.name.clone()).collect()
}

fn search_paths(c: &mut DbConnection, q: &str, host: Option<&str>) -> (Vec<String>, i64) {
    let page = search::search(c, q, host, 100, 0).unwrap();
    (page.items.iter().map(|h| h.path()).collect(), page.total)
}

const S1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const S2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const S3: &str = "3333333333333333333333333333333333333333333333333333333333333333";

/// A report queues one `catalog` job per uncatalogued snapshot (newest
/// `keep` per group, oldest first, none twice); ingested chunks complete
/// into a catalog whose folders list directories first, paged.
#[test]
fn report_ingest_and_browse() {
    for_each_backend("catalog_report_ingest_and_browse", |pool, _| {
        let c = &mut pool.get().unwrap();
        let host = add_host(c, "web-01").id;
        let list = [
            snapshot(S1, "etc", 1),
            snapshot(S2, "etc", 2),
            snapshot(S3, "etc", 3),
        ];
        let queued = report(c, &host, &list, 2);
        let ids: Vec<_> = queued
            .jobs
            .iter()
            .map(|j| j.snapshot_id.clone().unwrap())
            .collect();
        assert_eq!(ids, [S2, S1], "the newest two, oldest first");
        assert!(queued
            .jobs
            .iter()
            .all(|j| j.kind == JobKind::Catalog && j.status == JobStatus::Queued));
        assert!(report(c, &host, &list, 2).jobs.is_empty(), "queued already");

        let job = &queued.jobs[1];
        let done = catalogue(c, &host, S1, &job.id, &etc_tree(""), 2);
        assert_eq!(done, Completion::Complete { dropped: vec![] });
        let row = catalog::get(c, &host, S1).unwrap().unwrap();
        assert_eq!(
            (row.state.as_str(), row.entries, row.source_group.as_str()),
            (STATE_COMPLETE, 8, "etc")
        );
        assert_eq!(row.snapshot_time, NOW - HOUR);

        let root = browse::list_dir(c, row.id, "/", 50, 0).unwrap();
        assert_eq!((names(&root), root.total), (vec!["etc".to_owned()], 1));
        let etc = browse::list_dir(c, row.id, "/etc/", 50, 0).unwrap();
        assert_eq!(names(&etc), ["nginx", "a_b.txt", "hosts", "localtime"]);
        assert_eq!(etc.total, 4);
        let hosts = &etc.items[2];
        assert_eq!(
            (hosts.path(), hosts.kind.as_str(), hosts.size, hosts.mtime),
            ("/etc/hosts".to_owned(), "file", Some(220), Some(NOW))
        );
        let page = browse::list_dir(c, row.id, "/etc/", 2, 1).unwrap();
        assert_eq!(
            (names(&page), page.total),
            (vec!["a_b.txt".to_owned(), "hosts".to_owned()], 4)
        );
        assert_eq!(
            browse::list_dir(c, row.id, "/nope/", 50, 0).unwrap().total,
            0
        );

        // The snapshot is catalogued: the next report queues only S2's job
        // (still queued), nothing new.
        assert!(report(c, &host, &list, 2).jobs.is_empty());
    });
}

/// Search: case-insensitive substring of the whole path, complete
/// catalogs only, optionally one host; LIKE wildcards are literal.
#[test]
fn search_paths_across_hosts() {
    for_each_backend("catalog_search", |pool, _| {
        let c = &mut pool.get().unwrap();
        let web = add_host(c, "web-01").id;
        let db = add_host(c, "db-01").id;
        report(c, &web, &[snapshot(S1, "etc", 1)], 3);
        report(c, &db, &[snapshot(S2, "etc", 1), snapshot(S3, "etc", 2)], 3);
        catalogue(c, &web, S1, "job-web", &etc_tree("web-"), 3);
        catalogue(c, &db, S2, "job-db", &etc_tree("db-"), 3);
        // S3 is only being ingested: not searchable.
        ingest::append_chunks(
            c,
            &[Chunk {
                host_id: db.to_string().into(),
                job_id: "job-s3".into(),
                snapshot_id: S3.into(),
                entries: etc_tree("s3-"),
            }],
            NOW,
        )
        .unwrap();

        let (paths, total) = search_paths(c, "nginx.CONF", None);
        assert_eq!(total, 2);
        assert_eq!(
            paths,
            ["/etc/nginx/web-NGINX.conf", "/etc/nginx/db-NGINX.conf"]
        );
        let (paths, total) = search_paths(c, "NGINX", Some(&db));
        assert_eq!(total, 4, "{paths:?}"); // /etc/nginx, its file, sites, sites/default
        assert!(paths.iter().all(|p| p.contains("nginx")));
        let hit = &search::search(c, "web-nginx", None, 10, 0).unwrap().items[0];
        assert_eq!(
            (
                hit.host_id.as_str(),
                hit.snapshot_id.as_str(),
                hit.snapshot_time
            ),
            (web.as_str(), S1, NOW - HOUR)
        );
        assert_eq!(
            (hit.kind.as_str(), hit.size, hit.mtime),
            ("file", Some(1000), Some(NOW))
        );
        assert_eq!(search_paths(c, "a_b", None).1, 2);
        assert_eq!(search_paths(c, "a%b", None).1, 0, "% is literal");
        assert_eq!(
            search_paths(c, "s3-nginx", None).1,
            0,
            "ingesting catalogs are not searched"
        );
        assert_eq!(search_paths(c, "\"quoted\"", None).1, 0);
        assert_eq!(search_paths(c, "ng", None).1, 0, "shorter than the trigram");
        let page = search::search(c, "etc", None, 3, 3).unwrap();
        assert_eq!((page.items.len(), page.total), (3, 16));
    });
}

/// `--catalog-keep`: completing a newer snapshot drops the group's oldest
/// catalog (entries and search index), other groups untouched; a report
/// without a snapshot drops its catalog.
#[test]
fn keep_and_forget() {
    for_each_backend("catalog_keep_and_forget", |pool, _| {
        let c = &mut pool.get().unwrap();
        let host = add_host(c, "web-01").id;
        let s4 = "4444444444444444444444444444444444444444444444444444444444444444";
        let list = [
            snapshot(S1, "etc", 1),
            snapshot(S2, "etc", 2),
            snapshot(S3, "etc", 3),
            snapshot(s4, "srv", 4),
        ];
        report(c, &host, &list, 2);
        catalogue(c, &host, s4, "j4", &[entry("/srv", "dir", None)], 2);
        catalogue(c, &host, S3, "j3", &etc_tree("three-"), 2);
        catalogue(c, &host, S2, "j2", &etc_tree("two-"), 2);
        assert_eq!(search_paths(c, "three-nginx", None).1, 1);
        let done = catalogue(c, &host, S1, "j1", &etc_tree("one-"), 2);
        assert_eq!(
            done,
            Completion::Complete {
                dropped: vec![S3.to_owned()]
            }
        );
        assert!(catalog::get(c, &host, S3).unwrap().is_none());
        assert_eq!(
            search_paths(c, "three-nginx", None).1,
            0,
            "its index went with it"
        );
        assert!(
            catalog::get(c, &host, s4).unwrap().is_some(),
            "another group"
        );
        assert_eq!(search_paths(c, "nginx.conf", None).1, 2);

        // forget removed S2: the next report drops its catalog.
        let after = report(
            c,
            &host,
            &[snapshot(S1, "etc", 1), snapshot(s4, "srv", 4)],
            2,
        );
        assert_eq!(after.dropped, [S2]);
        assert!(after.jobs.is_empty());
        assert_eq!(search_paths(c, "two-nginx", None).1, 0);
        assert_eq!(search_paths(c, "one-nginx", None).1, 1);
        let rows: i64 = catalog::catalog_entries::table
            .count()
            .get_result(&mut ***c)
            .unwrap();
        assert_eq!(rows, 9, "S1's 8 entries and s4's 1");
    });
}

/// A job whose entries did not all arrive leaves no catalog; a chunk of a
/// newer job starts the row over; a chunk for a complete catalog is
/// ignored; queued duplicates are cancelled when one completes.
#[test]
fn lost_chunks_and_takeovers() {
    for_each_backend("catalog_lost_chunks_and_takeovers", |pool, _| {
        let c = &mut pool.get().unwrap();
        let host = add_host(c, "web-01").id;
        let queued = report(c, &host, &[snapshot(S1, "etc", 1)], 3).jobs;
        let chunk = |job: &str, entries: Vec<CatalogEntry>| Chunk {
            host_id: host.to_string().into(),
            job_id: job.into(),
            snapshot_id: S1.to_owned(),
            entries,
        };
        ingest::append_chunks(c, &[chunk("old", etc_tree("old-"))], NOW).unwrap();
        let lost =
            ingest::complete(c, &host.as_str().into(), S1, &"old".into(), Some(9), 3, NOW).unwrap();
        assert_eq!(
            lost,
            Completion::Incomplete {
                stored: 8,
                reported: 9
            }
        );
        assert!(catalog::get(c, &host, S1).unwrap().is_none());

        ingest::append_chunks(c, &[chunk("a", etc_tree("a-"))], NOW).unwrap();
        ingest::append_chunks(c, &[chunk("b", vec![entry("/b", "file", Some(1))])], NOW).unwrap();
        assert_eq!(
            ingest::complete(c, &host.as_str().into(), S1, &"a".into(), Some(8), 3, NOW).unwrap(),
            Completion::NotFilled
        );
        let requeued = lifecycle::requeue(c, &queued[0], NOW).unwrap().unwrap();
        assert_eq!(requeued.snapshot_id.as_deref(), Some(S1));
        assert!(
            lifecycle::requeue(c, &queued[0], NOW).unwrap().is_none(),
            "one is queued"
        );
        let done =
            ingest::complete(c, &host.as_str().into(), S1, &"b".into(), Some(1), 3, NOW).unwrap();
        assert_eq!(done, Completion::Complete { dropped: vec![] });
        for job in [&queued[0], &requeued] {
            let job = jobs::get(c, &job.id).unwrap().unwrap();
            assert_eq!(job.status, JobStatus::Cancelled);
            assert_eq!(job.error.as_deref(), Some(ingest::ALREADY_CATALOGUED));
        }
        let ignored = ingest::append_chunks(c, &[chunk("c", etc_tree("c-"))], NOW).unwrap();
        assert_eq!((ignored.stored, ignored.ignored), (0, 8));
        assert_eq!(search_paths(c, "a-nginx", None).1, 0);
        assert_eq!(catalog::get(c, &host, S1).unwrap().unwrap().entries, 1);
    });
}

/// Live listings are cached per folder; a catalog job then takes the row
/// over; a cache write for a snapshot being catalogued is refused.
#[test]
fn live_listing_cache() {
    for_each_backend("catalog_live_listing_cache", |pool, _| {
        let c = &mut pool.get().unwrap();
        let host = add_host(c, "web-01").id;
        report(
            c,
            &host,
            &[snapshot(S1, "etc", 1), snapshot(S2, "etc", 2)],
            3,
        );
        let children = vec![
            entry("/etc/hosts", "file", Some(3)),
            entry("/etc/nginx", "dir", None),
            entry("/elsewhere/x", "file", None),
        ];
        assert!(browse::cache_dir(c, &host, S1, "/etc/", &children, NOW).unwrap());
        let row = catalog::get(c, &host, S1).unwrap().unwrap();
        assert_eq!(row.state, catalog::STATE_LIVE);
        assert!(browse::is_cached(c, row.id, "/etc/").unwrap());
        assert!(!browse::is_cached(c, row.id, "/").unwrap());
        let page = browse::list_dir(c, row.id, "/etc/", 50, 0).unwrap();
        assert_eq!(names(&page), ["nginx", "hosts"]);
        assert!(
            browse::cache_dir(c, &host, S1, "/etc/", &children, NOW).unwrap(),
            "cached twice is fine"
        );

        catalogue(c, &host, S1, "job", &etc_tree(""), 3);
        let row = catalog::get(c, &host, S1).unwrap().unwrap();
        assert!(row.is_complete());
        assert!(!browse::is_cached(c, row.id, "/etc/").unwrap());
        assert_eq!(
            browse::list_dir(c, row.id, "/etc/", 50, 0).unwrap().total,
            4
        );

        ingest::append_chunks(
            c,
            &[Chunk {
                host_id: host.to_string().into(),
                job_id: "j2".into(),
                snapshot_id: S2.into(),
                entries: etc_tree(""),
            }],
            NOW,
        )
        .unwrap();
        assert!(!browse::cache_dir(c, &host, S2, "/etc/", &children, NOW).unwrap());
    });
}
