-- Fleet-scale reads (issue 10, section 7), PostgreSQL dialect; kept in step
-- with migrations/sqlite/2026-12-03-000001_fleet_summary/up.sql.
--
-- Summary rows that triggers keep in step with every write to `jobs` and
-- `hosts`, inside the transaction that makes the write (whichever store
-- function it is, cascades included), so the dashboard and /metrics read a
-- few rows instead of scanning a million jobs. Each is backfilled here from
-- the existing rows.

-- Natural-order key of the host name (`web-2` before `web-10`), computed
-- by the store (`store::hosts::natural_key`) on insert and hello; rows
-- left NULL (this migration, bulk loads) are filled when the server starts.
-- Byte order ("C"), as on SQLite: the key is built for plain comparison.
ALTER TABLE hosts ADD COLUMN sort_key TEXT COLLATE "C";
CREATE INDEX hosts_sort_key ON hosts (sort_key, id);

-- Finish time of the host's newest succeeded backup (trigger-kept).
ALTER TABLE hosts ADD COLUMN last_backup_at BIGINT;
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
    SELECT h.id, l.key, l.value FROM hosts h, jsonb_each_text(h.labels::jsonb) l;

CREATE FUNCTION hosts_labels_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM host_labels WHERE host_id = NEW.id;
    END IF;
    INSERT INTO host_labels (host_id, key, value)
        SELECT NEW.id, l.key, l.value FROM jsonb_each_text(NEW.labels::jsonb) l;
    RETURN NEW;
END
$$;
CREATE TRIGGER hosts_labels_rows AFTER INSERT OR UPDATE OF labels ON hosts
    FOR EACH ROW EXECUTE FUNCTION hosts_labels_rows();

-- How many jobs there are of each kind and status (/metrics).
CREATE TABLE job_counts (
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (kind, status)
);
INSERT INTO job_counts (kind, status, n) SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status;

-- Jobs that ended, by the hour they ended in (finished_at / 3,600,000),
-- kind and status: the dashboard's "last 24 hours".
CREATE TABLE job_outcomes_hourly (
    hour BIGINT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL,
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
    finished_at BIGINT,
    tag TEXT,
    last_success_at BIGINT,
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

-- A job counts under its kind and status from its insert to its delete. A
-- job that becomes terminal (or is written terminal) is counted in its
-- hour and, for a backup, becomes its group's latest result and raises the
-- host's last backup time.
CREATE FUNCTION jobs_summaries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    done_at BIGINT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE job_counts SET n = n - 1 WHERE kind = OLD.kind AND status = OLD.status;
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status = NEW.status THEN
            RETURN NEW;
        END IF;
        UPDATE job_counts SET n = n - 1 WHERE kind = OLD.kind AND status = OLD.status;
    END IF;
    INSERT INTO job_counts (kind, status, n) VALUES (NEW.kind, NEW.status, 1)
        ON CONFLICT (kind, status) DO UPDATE SET n = job_counts.n + 1;
    IF NEW.status NOT IN ('succeeded', 'failed', 'cancelled') THEN
        RETURN NEW;
    END IF;
    IF NEW.finished_at IS NOT NULL THEN
        INSERT INTO job_outcomes_hourly (hour, kind, status, n)
            VALUES (NEW.finished_at / 3600000, NEW.kind, NEW.status, 1)
            ON CONFLICT (hour, kind, status) DO UPDATE SET n = job_outcomes_hourly.n + 1;
    END IF;
    IF NEW.kind <> 'backup' THEN
        RETURN NEW;
    END IF;
    done_at := COALESCE(NEW.finished_at, NEW.created_at);
    IF NEW.source_group_id IS NOT NULL THEN
        INSERT INTO backup_latest AS b
            (host_id, source_group_id, job_id, status, warning, finished_at, tag, last_success_at)
            VALUES (NEW.host_id, NEW.source_group_id, NEW.id, NEW.status, NEW.warning IS NOT NULL,
                NEW.finished_at, NEW.tag, CASE WHEN NEW.status = 'succeeded' THEN done_at END)
            ON CONFLICT (host_id, source_group_id) DO UPDATE SET
                job_id = CASE WHEN excluded.job_id >= b.job_id THEN excluded.job_id ELSE b.job_id END,
                status = CASE WHEN excluded.job_id >= b.job_id THEN excluded.status ELSE b.status END,
                warning = CASE WHEN excluded.job_id >= b.job_id THEN excluded.warning ELSE b.warning END,
                finished_at = CASE WHEN excluded.job_id >= b.job_id THEN excluded.finished_at ELSE b.finished_at END,
                tag = CASE WHEN excluded.job_id >= b.job_id THEN excluded.tag ELSE b.tag END,
                last_success_at = GREATEST(b.last_success_at, excluded.last_success_at);
    END IF;
    IF NEW.status = 'succeeded' THEN
        UPDATE hosts SET last_backup_at = GREATEST(last_backup_at, done_at) WHERE id = NEW.host_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER jobs_summaries AFTER INSERT OR DELETE OR UPDATE OF status ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobs_summaries();

-- Log retention walks finished jobs in finish order from where it stopped.
CREATE INDEX jobs_finished_at ON jobs (finished_at, id);
CREATE TABLE log_prune_cursor (
    id INTEGER PRIMARY KEY NOT NULL,
    finished_at BIGINT NOT NULL,
    job_id TEXT NOT NULL
);
INSERT INTO log_prune_cursor (id, finished_at, job_id) VALUES (1, 0, '');

-- The job list filtered by status, newest first.
CREATE INDEX jobs_status_created_at ON jobs (status, created_at, id);
-- The job list by host and status: without it the planner walks the
-- status index above for a host filter too.
CREATE INDEX jobs_host_status_created_at ON jobs (host_id, status, created_at, id);
