-- Verification (issue 11 §4): the newest succeeded drill per host and
-- source group (/metrics) and the host page's latest drill come from this
-- index instead of a scan of every job.
CREATE INDEX jobs_kind_status_host_tag_finished ON jobs (kind, status, host_id, tag, finished_at);

-- Check rotation: per host (a host has one repository) the number of
-- subsets n, the subset k (1-based) the next check reads, and how many
-- rotating checks were issued.
CREATE TABLE check_rotation (
    host_id TEXT PRIMARY KEY NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    subsets INTEGER NOT NULL,
    next_subset INTEGER NOT NULL,
    runs INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The rotating checks issued, the last n per host: which subset each
-- reads (a succeeded job counts as read). Older rows are deleted as new
-- ones are issued.
CREATE TABLE check_runs (
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    run INTEGER NOT NULL,
    subset INTEGER NOT NULL,
    subsets INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (host_id, run)
);
