//! `catalog`: the snapshot catalog's store path (issue 11 §6). A fresh
//! database made by the server's own `store::connect` (SQLite in a
//! temporary directory, or --database-url) gets one snapshot of
//! --catalog-entries entries, generated as restic lists them (depth
//! first) and written exactly as the writer writes them
//! (`store::catalog::ingest::append_chunks`, chunks of
//! `CHUNK_MAX_ENTRIES`, --batch entries per transaction), never holding
//! more than one batch. Then, --requests times each: one page of a
//! 10,000-entry folder at a random offset (the browse route's query and
//! count), and a substring search over the whole catalog.
//!
//! Figures: `entries_per_sec` (ingest), `browse_*` and `search_*`
//! latencies. The WebSocket and the actors are not in the path: the
//! figure is the storage limit the server's ingest runs against.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::DateTime;

use restic_manager::protocol::{CatalogEntry, CHUNK_MAX_ENTRIES};
use restic_manager::store::catalog::ingest::{self, Chunk, Completion};
use restic_manager::store::catalog::{self as store_catalog, browse, search};
use restic_manager::store::models::{NewHost, NewSnapshot};
use restic_manager::store::{self, snapshots};

use crate::agent::Rng;
use crate::report::{summarize, Report};
use crate::Options;

/// Entries in the folder browsed.
const BIG_FOLDER: usize = 10_000;
/// Files per other folder.
const PER_FOLDER: usize = 100;
/// Rows per page of the browse measurement (the API's default page).
const PAGE: i64 = 50;
const SNAPSHOT: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

/// The entries of the generated snapshot, depth first: `/data`,
/// `/data/big` and its [`BIG_FOLDER`] files, then folders of
/// [`PER_FOLDER`] files until `total` entries.
fn entries(total: usize) -> impl Iterator<Item = CatalogEntry> {
    let mtime = DateTime::from_timestamp(1_764_000_000, 0);
    let node = move |path: String, kind: &str, size: Option<u64>| CatalogEntry {
        path,
        kind: kind.to_owned(),
        size,
        mtime,
        mode: Some(420),
    };
    let head = [
        node("/data".to_owned(), "dir", None),
        node("/data/big".to_owned(), "dir", None),
    ];
    let big = (0..BIG_FOLDER)
        .map(move |i| node(format!("/data/big/file-{i:05}.log"), "file", Some(i as u64)));
    let rest = (0..).flat_map(move |d: usize| {
        std::iter::once(node(format!("/data/d{d:05}"), "dir", None)).chain((0..PER_FOLDER).map(
            move |f| {
                node(
                    format!("/data/d{d:05}/f{f:03}-{d}.txt"),
                    "file",
                    Some(f as u64),
                )
            },
        ))
    });
    head.into_iter().chain(big).chain(rest).take(total)
}

pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let total = opts.catalog_entries as usize;
    let dir = std::env::temp_dir().join(format!("rm-loadgen-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let url = opts
        .database_url
        .clone()
        .unwrap_or_else(|| dir.join("catalog.db").display().to_string());
    let pool = store::connect(&url, 2)?;
    let mut conn = pool.get()?;
    let now = store::now_ms();
    let host_id = store::new_id();
    store::hosts::insert(
        &mut conn,
        &NewHost {
            id: host_id.clone().into(),
            hostname: "catalog-load".into(),
            display_name: None,
            labels: Default::default(),
            os: "linux".into(),
            arch: "amd64".into(),
            agent_version: None,
            restic_version: None,
            boot_time: None,
            capabilities: Vec::new(),
            agent_token_hash: format!("{:064x}", 1),
            enrolled_at: now,
            updated_at: now,
        },
    )?;
    let snapshot = NewSnapshot {
        snapshot_id: SNAPSHOT.into(),
        short_id: SNAPSHOT[..8].into(),
        time: now,
        hostname: "catalog-load".into(),
        paths: vec!["/data".to_owned()],
        tags: vec!["data".to_owned()],
        size_bytes: None,
        file_count: None,
    };
    snapshots::replace_for_host(&mut conn, &host_id, &[snapshot], now)?;

    eprintln!("ingesting {total} entries, {} per transaction", opts.batch);
    let batch = opts.batch as usize;
    let mut pending: Vec<Chunk> = Vec::new();
    let mut buffered = 0;
    let mut source = entries(total).peekable();
    let start = Instant::now();
    while source.peek().is_some() {
        let part: Vec<CatalogEntry> = source.by_ref().take(CHUNK_MAX_ENTRIES).collect();
        buffered += part.len();
        pending.push(Chunk {
            host_id: host_id.as_str().into(),
            job_id: "load".into(),
            snapshot_id: SNAPSHOT.into(),
            entries: part,
        });
        if buffered >= batch || source.peek().is_none() {
            ingest::append_chunks(&mut conn, &pending, now)?;
            pending.clear();
            buffered = 0;
        }
    }
    let completion = ingest::complete(
        &mut conn,
        &host_id.as_str().into(),
        SNAPSHOT,
        &"load".into(),
        Some(total as u64),
        3,
        now,
    )?;
    let ingest_time = start.elapsed();
    anyhow::ensure!(
        matches!(completion, Completion::Complete { .. }),
        "the catalog did not complete: {completion:?}"
    );
    let catalog_id = store_catalog::get(&mut conn, &host_id.as_str().into(), SNAPSHOT)?
        .context("the catalog row")?
        .id;

    let requests = opts.requests as usize;
    let mut random = Rng::new(0xca7a);
    let folder = BIG_FOLDER.min(total.saturating_sub(2)).max(1);
    let mut browse_times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let offset = random.below(folder) as i64;
        let at = Instant::now();
        let page = browse::list_dir(&mut conn, catalog_id, "/data/big/", PAGE, offset)?;
        browse_times.push(at.elapsed());
        anyhow::ensure!(page.total as usize == folder, "browse total {}", page.total);
    }
    let mut search_times: Vec<Duration> = Vec::with_capacity(requests);
    let mut hits = 0;
    for i in 0..requests {
        // A rare text (one folder's files) and a common one, alternately.
        let q = if i % 2 == 0 {
            format!("-{}.txt", random.below((total / (PER_FOLDER + 1)).max(1)))
        } else {
            "file-0999".to_owned()
        };
        let at = Instant::now();
        let page = search::search(&mut conn, &q, None, PAGE, 0)?;
        search_times.push(at.elapsed());
        hits += page.total;
    }
    drop(conn);
    drop(pool);
    let db_bytes = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    if opts.keep_data {
        eprintln!("data kept in {}", dir.display());
    } else if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("cannot remove {}: {e}", dir.display());
    }

    let mut report = Report::new("catalog", 0);
    report
        .text(
            "backend",
            if url.starts_with("postgres") {
                "postgres"
            } else {
                "sqlite"
            },
        )
        .int("entries", total as u64)
        .seconds("ingest", ingest_time)
        .float(
            "entries_per_sec",
            total as f64 / ingest_time.as_secs_f64().max(1e-9),
            0,
        )
        .int("folder_entries", folder as u64)
        .latency("browse", summarize(&mut browse_times).as_ref())
        .latency("search", summarize(&mut search_times).as_ref())
        .int("search_hits", hits.max(0) as u64)
        .int("db_bytes", db_bytes);
    Ok(report)
}
