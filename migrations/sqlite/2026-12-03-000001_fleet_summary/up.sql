-- Fleet-scale reads (issue 10, section 7), SQLite dialect; kept in step with
-- migrations/postgres/2026-12-03-000001_fleet_summary/up.sql.
--
-- Summary rows that triggers keep in step with every write to `jobs` and
-- `hosts`, inside the transaction that makes the write (whichever store
-- function it is, cascades included), so the dashboard and /metrics read a
-- few rows instead of scanning a million jobs. Each is backfilled here from
-- the existing rows.

-- Natural-order key of the host name (`web-2` before `web-10`), computed
-- by the store (`store::hosts::natural_key`) on insert and hello; rows
-- left NULL (this migration, bulk loads) are filled when the server starts.
ALTER TABLE hosts ADD COLUMN sort_key TEXT;
CREATE INDEX hosts_sort_key ON hosts (sort_key, id);

-- Finish time of the host's newest succeeded backup (trigger-kept).
ALTER TABLE hosts ADD COLUMN last_backup_at INTEGER;
UPDATE hosts SET last_backup_at = (
    SELECT MAX(COALESCE(j.finished_at, j.created_at)) FROM jobs j
    WHERE j.host_id = hosts.id AND j.kind = 'backup' AND j.status = 'succeeded');
CREATE INDEX hosts_last_backup_at ON hosts (last_backup_at);

-- The labels of `hosts.labels` (a JSON object) as rows, for the label filter.
CREATE TABLE host_labels (
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (host_id, key)
);
CREATE INDEX host_labels_key_value ON host_labels (key, value);
INSERT INTO host_labels (host_id, key, value)
    SELECT h.id, l.key, l.value FROM hosts h, json_each(h.labels) l;

CREATE TRIGGER hosts_labels_insert AFTER INSERT ON hosts BEGIN
    INSERT INTO host_labels (host_id, key, value)
        SELECT NEW.id, l.key, l.value FROM json_each(NEW.labels) l;
END;
CREATE TRIGGER hosts_labels_update AFTER UPDATE OF labels ON hosts BEGIN
    DELETE FROM host_labels WHERE host_id = NEW.id;
    INSERT INTO host_labels (host_id, key, value)
        SELECT NEW.id, l.key, l.value FROM json_each(NEW.labels) l;
END;

-- How many jobs there are of each kind and status (/metrics).
CREATE TABLE job_counts (
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (kind, status)
);
INSERT INTO job_counts (kind, status, n) SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status;

-- Jobs that ended, by the hour they ended in (finished_at / 3,600,000),
-- kind and status: the dashboard's "last 24 hours".
CREATE TABLE job_outcomes_hourly (
    hour INTEGER NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, kind, status)
);
INSERT INTO job_outcomes_hourly (hour, kind, status, n)
    SELECT finished_at / 3600000, kind, status, COUNT(*) FROM jobs
    WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at IS NOT NULL
    GROUP BY finished_at / 3600000, kind, status;

-- The latest finished backup of each host and source group (the newest
-- job id: ids are UUID v7), and the newest success among them.
CREATE TABLE backup_latest (
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    source_group_id TEXT NOT NULL REFERENCES source_groups (id) ON DELETE CASCADE,
    job_id TEXT NOT NULL,
    status TEXT NOT NULL,
    warning BOOLEAN NOT NULL,
    finished_at INTEGER,
    tag TEXT,
    last_success_at INTEGER,
    PRIMARY KEY (host_id, source_group_id)
);
CREATE INDEX backup_latest_status ON backup_latest (status);
INSERT INTO backup_latest (host_id, source_group_id, job_id, status, warning, finished_at, tag, last_success_at)
    SELECT j.host_id, j.source_group_id, j.id, j.status, j.warning IS NOT NULL, j.finished_at, j.tag,
        (SELECT MAX(COALESCE(s.finished_at, s.created_at)) FROM jobs s
         WHERE s.host_id = j.host_id AND s.source_group_id = j.source_group_id
           AND s.kind = 'backup' AND s.status = 'succeeded')
    FROM jobs j
    WHERE j.id IN (
        SELECT MAX(id) FROM jobs
        WHERE kind = 'backup' AND status IN ('succeeded', 'failed', 'cancelled')
          AND source_group_id IS NOT NULL
        GROUP BY host_id, source_group_id);

-- A job counts under its kind and status from its insert to its delete.
CREATE TRIGGER jobs_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts (kind, status, n) VALUES (NEW.kind, NEW.status, 1)
        ON CONFLICT (kind, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE kind = OLD.kind AND status = OLD.status;
END;
CREATE TRIGGER jobs_counts_status AFTER UPDATE OF status ON jobs
WHEN OLD.status <> NEW.status BEGIN
    UPDATE job_counts SET n = n - 1 WHERE kind = OLD.kind AND status = OLD.status;
    INSERT INTO job_counts (kind, status, n) VALUES (NEW.kind, NEW.status, 1)
        ON CONFLICT (kind, status) DO UPDATE SET n = n + 1;
END;

-- A job that becomes terminal (or is written terminal) is counted in its
-- hour and, for a backup, becomes its group's latest result and raises
-- the host's last backup time.
CREATE TRIGGER jobs_ended_insert AFTER INSERT ON jobs
WHEN NEW.status IN ('succeeded', 'failed', 'cancelled') BEGIN
    INSERT INTO job_outcomes_hourly (hour, kind, status, n)
        SELECT NEW.finished_at / 3600000, NEW.kind, NEW.status, 1 WHERE NEW.finished_at IS NOT NULL
        ON CONFLICT (hour, kind, status) DO UPDATE SET n = n + 1;
    INSERT INTO backup_latest (host_id, source_group_id, job_id, status, warning, finished_at, tag, last_success_at)
        SELECT NEW.host_id, NEW.source_group_id, NEW.id, NEW.status, NEW.warning IS NOT NULL,
            NEW.finished_at, NEW.tag,
            CASE WHEN NEW.status = 'succeeded' THEN COALESCE(NEW.finished_at, NEW.created_at) END
        WHERE NEW.kind = 'backup' AND NEW.source_group_id IS NOT NULL
        ON CONFLICT (host_id, source_group_id) DO UPDATE SET
            job_id = excluded.job_id, status = excluded.status, warning = excluded.warning,
            finished_at = excluded.finished_at, tag = excluded.tag
        WHERE excluded.job_id >= backup_latest.job_id;
    UPDATE backup_latest
        SET last_success_at = max(COALESCE(last_success_at, 0), COALESCE(NEW.finished_at, NEW.created_at))
        WHERE NEW.kind = 'backup' AND NEW.status = 'succeeded'
          AND host_id = NEW.host_id AND source_group_id = NEW.source_group_id;
    UPDATE hosts
        SET last_backup_at = max(COALESCE(last_backup_at, 0), COALESCE(NEW.finished_at, NEW.created_at))
        WHERE NEW.kind = 'backup' AND NEW.status = 'succeeded' AND id = NEW.host_id;
END;
CREATE TRIGGER jobs_ended_update AFTER UPDATE OF status ON jobs
WHEN OLD.status <> NEW.status AND NEW.status IN ('succeeded', 'failed', 'cancelled') BEGIN
    INSERT INTO job_outcomes_hourly (hour, kind, status, n)
        SELECT NEW.finished_at / 3600000, NEW.kind, NEW.status, 1 WHERE NEW.finished_at IS NOT NULL
        ON CONFLICT (hour, kind, status) DO UPDATE SET n = n + 1;
    INSERT INTO backup_latest (host_id, source_group_id, job_id, status, warning, finished_at, tag, last_success_at)
        SELECT NEW.host_id, NEW.source_group_id, NEW.id, NEW.status, NEW.warning IS NOT NULL,
            NEW.finished_at, NEW.tag,
            CASE WHEN NEW.status = 'succeeded' THEN COALESCE(NEW.finished_at, NEW.created_at) END
        WHERE NEW.kind = 'backup' AND NEW.source_group_id IS NOT NULL
        ON CONFLICT (host_id, source_group_id) DO UPDATE SET
            job_id = excluded.job_id, status = excluded.status, warning = excluded.warning,
            finished_at = excluded.finished_at, tag = excluded.tag
        WHERE excluded.job_id >= backup_latest.job_id;
    UPDATE backup_latest
        SET last_success_at = max(COALESCE(last_success_at, 0), COALESCE(NEW.finished_at, NEW.created_at))
        WHERE NEW.kind = 'backup' AND NEW.status = 'succeeded'
          AND host_id = NEW.host_id AND source_group_id = NEW.source_group_id;
    UPDATE hosts
        SET last_backup_at = max(COALESCE(last_backup_at, 0), COALESCE(NEW.finished_at, NEW.created_at))
        WHERE NEW.kind = 'backup' AND NEW.status = 'succeeded' AND id = NEW.host_id;
END;

-- Log retention walks finished jobs in finish order from where it stopped.
CREATE INDEX jobs_finished_at ON jobs (finished_at, id);
CREATE TABLE log_prune_cursor (
    id INTEGER PRIMARY KEY NOT NULL,
    finished_at INTEGER NOT NULL,
    job_id TEXT NOT NULL
);
INSERT INTO log_prune_cursor (id, finished_at, job_id) VALUES (1, 0, '');

-- The job list filtered by status, newest first.
CREATE INDEX jobs_status_created_at ON jobs (status, created_at, id);
-- The job list by host and status: without it the planner walks the
-- status index above for a host filter too.
CREATE INDEX jobs_host_status_created_at ON jobs (host_id, status, created_at, id);
