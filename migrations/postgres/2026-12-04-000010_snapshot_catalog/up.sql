-- The snapshot catalog (issue 11 §1): what each catalogued snapshot holds,
-- so that browsing and searching never touch the repository. Same tables
-- as SQLite; search uses pg_trgm (a trusted extension: the database owner
-- may create it) instead of FTS5.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE catalog_snapshots (
    id BIGINT PRIMARY KEY,
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    snapshot_id TEXT NOT NULL,
    source_group TEXT NOT NULL,
    snapshot_time BIGINT NOT NULL,
    state TEXT NOT NULL,
    job_id TEXT,
    entries BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    UNIQUE (host_id, snapshot_id)
);
CREATE INDEX catalog_snapshots_group ON catalog_snapshots (host_id, source_group, state, snapshot_time);

CREATE TABLE catalog_entries (
    id BIGINT PRIMARY KEY,
    catalog_id BIGINT NOT NULL REFERENCES catalog_snapshots (id) ON DELETE CASCADE,
    parent TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    rank INTEGER NOT NULL,
    size BIGINT,
    mtime BIGINT,
    mode BIGINT
);
CREATE INDEX catalog_entries_dir ON catalog_entries (catalog_id, parent, rank, name);
-- Substring search (ILIKE) over the full path.
CREATE INDEX catalog_entries_path_trgm ON catalog_entries USING gin ((parent || name) gin_trgm_ops);

CREATE TABLE catalog_live_dirs (
    catalog_id BIGINT NOT NULL REFERENCES catalog_snapshots (id) ON DELETE CASCADE,
    dir TEXT NOT NULL,
    PRIMARY KEY (catalog_id, dir)
);
