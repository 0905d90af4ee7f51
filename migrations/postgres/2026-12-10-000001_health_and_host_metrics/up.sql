-- Issue 14: service health checks and host metrics.
--
-- health_checks: a host's configured checks, one JSON list per host (the
-- list is replaced whole by PUT /hosts/{id}/health-checks).
-- health_results: the latest result per check; health_history: a bounded
-- history per check (the writer keeps the newest rows only).
-- host_metrics: heartbeat metrics as a time series, one row per host and
-- point: resolution 60 (a minute, kept 24 h) or 3600 (an hour, kept 30 days).
CREATE TABLE health_checks (
    host_id TEXT PRIMARY KEY NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    checks TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE health_results (
    host_id TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    ok BOOLEAN NOT NULL,
    latency_ms BIGINT,
    status_code INTEGER,
    error TEXT,
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (host_id, name)
);
-- The dashboard's "services down" counts the failing ones.
CREATE INDEX health_results_ok ON health_results (ok);

CREATE TABLE health_history (
    host_id TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    checked_at BIGINT NOT NULL,
    ok BOOLEAN NOT NULL,
    latency_ms BIGINT,
    status_code INTEGER,
    error TEXT,
    PRIMARY KEY (host_id, name, checked_at)
);

CREATE TABLE host_metrics (
    host_id TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    resolution INTEGER NOT NULL,
    at BIGINT NOT NULL,
    load1 DOUBLE PRECISION,
    mem_used_bytes BIGINT,
    mem_total_bytes BIGINT,
    disk_free_bytes BIGINT,
    source_disk_free TEXT,
    PRIMARY KEY (host_id, resolution, at)
);
CREATE INDEX host_metrics_age ON host_metrics (resolution, at);

-- A policy's health checks (a JSON list, as health_checks.checks): every
-- host the policy matches runs them too, its own checks winning on a name.
ALTER TABLE policies ADD COLUMN health_checks TEXT NOT NULL DEFAULT '[]';
