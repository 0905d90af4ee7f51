//! Restore drills (issue 11 §4), store side: the sample a drill restores,
//! picked from the newest complete catalog of a host's source group, and
//! the rotation that makes successive drills cover different files.
//!
//! Table `drill_rotation` (migration `restore_drills`): per host and
//! source group, the position in the catalog's file list (files in the
//! order `restic ls` printed them, i.e. by entry id) where the next drill
//! starts. [`pick`] reads from there, wrapping at the end, and the
//! rotation moves past what was examined; it is written in the same
//! transaction that inserts the drill job.

use diesel::prelude::*;

use super::catalog::{catalog_entries, catalog_snapshots, CatalogSnapshot, STATE_COMPLETE};
use super::paged::PagedDsl;
use super::DbConnection;
use crate::protocol::DrillFile;

/// Files sampled when the request or schedule gives no number.
pub const DEFAULT_SAMPLE_FILES: u64 = 100;
/// Bytes sampled when the request or schedule gives no number (256 MiB).
pub const DEFAULT_SAMPLE_BYTES: u64 = 256 * 1024 * 1024;
/// The largest `drill_sample_files` accepted.
pub const MAX_SAMPLE_FILES: u64 = 10_000;

diesel::table! {
    drill_rotation (host_id, source_group) {
        host_id -> Text,
        source_group -> Text,
        next_offset -> BigInt,
        updated_at -> BigInt,
    }
}

/// What a drill restores: one snapshot's sample and where the next drill
/// of the group starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The catalogued snapshot (full id).
    pub snapshot_id: String,
    /// The source group.
    pub source_group: String,
    /// The files with their catalog sizes.
    pub files: Vec<DrillFile>,
    /// The offset this sample started at.
    pub offset: u64,
    /// The offset the next drill starts at.
    pub next_offset: u64,
}

/// Takes files in order while they fit: at most `max_files`, their sizes
/// summing to at most `max_bytes`. A file larger than the whole budget is
/// skipped (it could never be drilled); one that does not fit what is
/// left ends the sample, so the next drill starts with it. Returns the
/// sample and how many candidates it examined (the rotation's step).
pub fn take_sample(
    candidates: impl IntoIterator<Item = DrillFile>,
    max_files: u64,
    max_bytes: u64,
) -> (Vec<DrillFile>, u64) {
    let mut files = Vec::new();
    let mut bytes = 0u64;
    let mut examined = 0u64;
    for file in candidates {
        if files.len() as u64 >= max_files {
            break;
        }
        if file.size > max_bytes {
            examined += 1;
            continue;
        }
        if bytes + file.size > max_bytes {
            break;
        }
        bytes += file.size;
        examined += 1;
        files.push(file);
    }
    (files, examined)
}

/// The rotation step: `offset + examined`, wrapped at `total`.
pub fn next_offset(offset: u64, examined: u64, total: u64) -> u64 {
    if total == 0 {
        0
    } else {
        (offset + examined) % total
    }
}

/// The newest complete catalog of each source group of a host, newest
/// group first.
pub fn newest_catalogs(
    conn: &mut DbConnection,
    host_id: &str,
) -> QueryResult<Vec<CatalogSnapshot>> {
    let rows: Vec<CatalogSnapshot> = catalog_snapshots::table
        .filter(catalog_snapshots::host_id.eq(host_id))
        .filter(catalog_snapshots::state.eq(STATE_COMPLETE))
        .order((
            catalog_snapshots::snapshot_time.desc(),
            catalog_snapshots::id.desc(),
        ))
        .select(CatalogSnapshot::as_select())
        .load(conn)?;
    let mut seen = std::collections::HashSet::new();
    Ok(rows
        .into_iter()
        .filter(|row| seen.insert(row.source_group.clone()))
        .collect())
}

/// The rotation offset of a host's group (0 when none is kept).
pub fn offset(conn: &mut DbConnection, host_id: &str, group: &str) -> QueryResult<(u64, i64)> {
    let row: Option<(i64, i64)> = drill_rotation::table
        .filter(drill_rotation::host_id.eq(host_id))
        .filter(drill_rotation::source_group.eq(group))
        .select((drill_rotation::next_offset, drill_rotation::updated_at))
        .first(conn)
        .optional()?;
    Ok(row.map_or((0, 0), |(offset, at)| {
        (u64::try_from(offset).unwrap_or(0), at)
    }))
}

/// Keeps where the next drill of a host's group starts.
pub fn set_offset(
    conn: &mut DbConnection,
    host_id: &str,
    group: &str,
    next: u64,
    now: i64,
) -> QueryResult<()> {
    let next = i64::try_from(next).unwrap_or(0);
    // Update, else insert: the one writer runs this, so nothing races it
    // (the multi-backend connection has no upsert).
    let updated = diesel::update(
        drill_rotation::table
            .filter(drill_rotation::host_id.eq(host_id))
            .filter(drill_rotation::source_group.eq(group)),
    )
    .set((
        drill_rotation::next_offset.eq(next),
        drill_rotation::updated_at.eq(now),
    ))
    .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(drill_rotation::table)
            .values((
                drill_rotation::host_id.eq(host_id),
                drill_rotation::source_group.eq(group),
                drill_rotation::next_offset.eq(next),
                drill_rotation::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The files of a catalog from `offset` on (by entry id), at most `limit`.
fn files_from(
    conn: &mut DbConnection,
    catalog_id: i64,
    offset: u64,
    limit: u64,
) -> QueryResult<Vec<DrillFile>> {
    let rows: Vec<(String, String, Option<i64>)> = catalog_entries::table
        .filter(catalog_entries::catalog_id.eq(catalog_id))
        .filter(catalog_entries::kind.eq("file"))
        .order(catalog_entries::id.asc())
        .select((
            catalog_entries::parent,
            catalog_entries::name,
            catalog_entries::size,
        ))
        .paged(
            i64::try_from(limit).unwrap_or(i64::MAX),
            i64::try_from(offset).unwrap_or(i64::MAX),
        )
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(parent, name, size)| DrillFile {
            path: format!("{parent}{name}"),
            size: size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        })
        .collect())
}

/// Picks the sample of one catalog from the group's rotation offset
/// (wrapping at the end of its file list). Does not move the rotation.
pub fn pick(
    conn: &mut DbConnection,
    catalog: &CatalogSnapshot,
    max_files: u64,
    max_bytes: u64,
) -> QueryResult<Sample> {
    let total: i64 = catalog_entries::table
        .filter(catalog_entries::catalog_id.eq(catalog.id))
        .filter(catalog_entries::kind.eq("file"))
        .count()
        .get_result(conn)?;
    let total = u64::try_from(total).unwrap_or(0);
    let (stored, _) = offset(conn, &catalog.host_id, &catalog.source_group)?;
    // A newer snapshot may hold fewer files than the offset.
    let start = if total == 0 { 0 } else { stored % total };
    let window = max_files.min(total);
    let mut candidates = files_from(conn, catalog.id, start, window)?;
    let got = candidates.len() as u64;
    if got < window {
        candidates.extend(files_from(conn, catalog.id, 0, (window - got).min(start))?);
    }
    let (files, examined) = take_sample(candidates, max_files, max_bytes);
    Ok(Sample {
        snapshot_id: catalog.snapshot_id.clone(),
        source_group: catalog.source_group.clone(),
        files,
        offset: start,
        next_offset: next_offset(start, examined.max(1), total),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> DrillFile {
        DrillFile {
            path: format!("/d/{name}"),
            size,
        }
    }

    /// The sample stops at the file count.
    #[test]
    fn sample_bounded_by_files() {
        let all: Vec<DrillFile> = (0..10).map(|i| file(&i.to_string(), 1)).collect();
        let (files, examined) = take_sample(all, 3, 1000);
        assert_eq!(files.len(), 3);
        assert_eq!(examined, 3);
        assert_eq!(files[0].path, "/d/0");
    }

    /// The sample stops before the file that does not fit the bytes left;
    /// a file bigger than the whole budget is skipped, not drilled.
    #[test]
    fn sample_bounded_by_bytes() {
        let all = vec![
            file("a", 40),
            file("huge", 500),
            file("b", 50),
            file("c", 20),
        ];
        let (files, examined) = take_sample(all, 10, 100);
        let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["/d/a", "/d/b"]);
        // a, huge (skipped), b examined; c would exceed 100 and waits.
        assert_eq!(examined, 3);
    }

    /// Successive drills move through the list and wrap at its end.
    #[test]
    fn rotation_wraps() {
        assert_eq!(next_offset(0, 3, 10), 3);
        assert_eq!(next_offset(9, 3, 10), 2);
        assert_eq!(next_offset(5, 5, 10), 0);
        assert_eq!(next_offset(4, 2, 0), 0);
        // Four drills of 3 over 10 files cover all of them.
        let mut offset = 0;
        let mut covered = std::collections::BTreeSet::new();
        for _ in 0..4 {
            for i in 0..3 {
                covered.insert((offset + i) % 10);
            }
            offset = next_offset(offset, 3, 10);
        }
        assert_eq!(covered.len(), 10);
    }
}
