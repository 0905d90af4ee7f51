-- The snapshot catalog (issue 11 §1): what each catalogued snapshot holds,
-- so that browsing and searching never touch the repository.
--
-- catalog_snapshots: one row per (host, snapshot) being catalogued
-- (`ingesting`), catalogued (`complete`) or holding directories listed
-- live from the agent (`live`). Ids are given by the one writer.
CREATE TABLE catalog_snapshots (
    id INTEGER PRIMARY KEY,
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    snapshot_id TEXT NOT NULL,
    source_group TEXT NOT NULL,
    snapshot_time INTEGER NOT NULL,
    state TEXT NOT NULL,
    job_id TEXT,
    entries INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    completed_at INTEGER,
    UNIQUE (host_id, snapshot_id)
);
CREATE INDEX catalog_snapshots_group ON catalog_snapshots (host_id, source_group, state, snapshot_time);

-- One row per node; path = parent || name (parent ends with '/'). A
-- folder is one range of the (catalog_id, parent, rank, name) index,
-- directories (rank 0) first.
CREATE TABLE catalog_entries (
    id INTEGER PRIMARY KEY,
    catalog_id INTEGER NOT NULL REFERENCES catalog_snapshots (id) ON DELETE CASCADE,
    parent TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    rank INTEGER NOT NULL,
    size INTEGER,
    mtime INTEGER,
    mode INTEGER
);
CREATE INDEX catalog_entries_dir ON catalog_entries (catalog_id, parent, rank, name);

-- Directories of a `live` catalog row answered by the agent and cached.
CREATE TABLE catalog_live_dirs (
    catalog_id INTEGER NOT NULL REFERENCES catalog_snapshots (id) ON DELETE CASCADE,
    dir TEXT NOT NULL,
    PRIMARY KEY (catalog_id, dir)
);

-- Substring search over the full paths of ingested entries: a trigram
-- index without a copy of the text (rowid = catalog_entries.id).
CREATE VIRTUAL TABLE catalog_fts USING fts5 (
    path,
    content = '',
    contentless_delete = 1,
    tokenize = 'trigram'
);
