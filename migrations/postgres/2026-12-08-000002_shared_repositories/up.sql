-- Shared repositories (issue 12 §3). A repository with a name is shared:
-- created through /api/v1/repositories, several hosts may point to it.
-- One without a name is a host's private repository (the inline PUT).
ALTER TABLE repositories ADD COLUMN name TEXT;
CREATE UNIQUE INDEX repositories_name ON repositories (name);

-- The host that runs the repository's maintenance (prune, check) when it
-- is online; otherwise any online host attached to it.
ALTER TABLE repositories ADD COLUMN maintenance_host_id TEXT;

-- Leases on shared repositories: one row per job that holds or waits for
-- one. `mode` is 'shared' or 'exclusive', `state` 'held' or 'waiting'.
-- A row whose job is terminal holds nothing (rows are cleaned lazily).
CREATE TABLE leases (
    job_id TEXT PRIMARY KEY NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    repository_id TEXT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    mode TEXT NOT NULL,
    state TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    granted_at BIGINT,
    waiting_for TEXT
);
CREATE INDEX leases_repository ON leases (repository_id, state);
CREATE INDEX leases_host ON leases (host_id);
