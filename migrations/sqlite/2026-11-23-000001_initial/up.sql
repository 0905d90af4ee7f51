-- restic-manager initial schema, SQLite dialect.
-- Kept in step with migrations/postgres/2026-11-23-000001_initial/up.sql:
-- the same tables, columns, keys and indexes; only the types differ
-- (INTEGER for BIGINT/INTEGER/BOOLEAN, BLOB for BYTEA, REAL for DOUBLE).
-- Conventions: ids are TEXT (UUID v7); times are Unix milliseconds UTC;
-- lists, policies, stats and labels are TEXT holding JSON; enums are TEXT
-- (validated by the Rust types in src/store/types.rs); token columns hold
-- the lowercase hex SHA-256 of the token, never the token.

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_login_at INTEGER
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    source_addr TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    expires_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX api_tokens_user_id ON api_tokens (user_id);

CREATE TABLE repositories (
    id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    username TEXT,
    password_sealed BLOB,
    credential_sealed BLOB,
    hook_shell TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE hosts (
    id TEXT PRIMARY KEY NOT NULL,
    hostname TEXT NOT NULL,
    display_name TEXT,
    labels TEXT NOT NULL DEFAULT '{}',
    os TEXT NOT NULL,
    arch TEXT NOT NULL,
    agent_version TEXT,
    restic_version TEXT,
    boot_time INTEGER,
    capabilities TEXT NOT NULL DEFAULT '[]',
    agent_token_hash TEXT NOT NULL UNIQUE,
    repository_id TEXT REFERENCES repositories (id) ON DELETE SET NULL,
    online BOOLEAN NOT NULL DEFAULT 0,
    last_seen_at INTEGER,
    enrolled_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX hosts_online ON hosts (online);
CREATE INDEX hosts_hostname ON hosts (hostname);
CREATE INDEX hosts_repository_id ON hosts (repository_id);

CREATE TABLE enrollment_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    used_by_host_id TEXT REFERENCES hosts (id) ON DELETE SET NULL,
    revoked_at INTEGER
);
CREATE INDEX enrollment_tokens_expires_at ON enrollment_tokens (expires_at);

CREATE TABLE source_groups (
    id TEXT PRIMARY KEY NOT NULL,
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    includes TEXT NOT NULL DEFAULT '[]',
    excludes TEXT NOT NULL DEFAULT '[]',
    retention_policy TEXT,
    retry_max INTEGER NOT NULL DEFAULT 0,
    retry_backoff_seconds INTEGER NOT NULL DEFAULT 300,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (host_id, name)
);

CREATE TABLE schedules (
    id TEXT PRIMARY KEY NOT NULL,
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    cron_expr TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX schedules_host_id ON schedules (host_id);

CREATE TABLE schedule_source_groups (
    schedule_id TEXT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    source_group_id TEXT NOT NULL REFERENCES source_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (schedule_id, source_group_id)
);
CREATE INDEX schedule_source_groups_source_group_id ON schedule_source_groups (source_group_id);

CREATE TABLE host_schedule_version (
    host_id TEXT PRIMARY KEY NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    version INTEGER NOT NULL DEFAULT 1,
    pushed_version INTEGER NOT NULL DEFAULT 0,
    acked_version INTEGER NOT NULL DEFAULT 0,
    pushed_at INTEGER,
    acked_at INTEGER
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    "trigger" TEXT NOT NULL,
    source_group_id TEXT REFERENCES source_groups (id) ON DELETE SET NULL,
    tag TEXT,
    includes TEXT NOT NULL DEFAULT '[]',
    excludes TEXT NOT NULL DEFAULT '[]',
    retention_policy TEXT,
    args TEXT NOT NULL DEFAULT '[]',
    schedule_id TEXT REFERENCES schedules (id) ON DELETE SET NULL,
    scheduled_at INTEGER,
    attempt INTEGER NOT NULL DEFAULT 1,
    first_attempt_id TEXT REFERENCES jobs (id) ON DELETE SET NULL,
    retry_at INTEGER,
    created_at INTEGER NOT NULL,
    dispatched_at INTEGER,
    accepted_at INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    exit_code INTEGER,
    error TEXT,
    warning TEXT,
    stats TEXT,
    progress TEXT,
    last_log_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_host_id_created_at ON jobs (host_id, created_at);
CREATE INDEX jobs_host_id_status ON jobs (host_id, status);
CREATE INDEX jobs_status ON jobs (status);
CREATE INDEX jobs_status_retry_at ON jobs (status, retry_at);
CREATE INDEX jobs_created_at ON jobs (created_at);
CREATE INDEX jobs_schedule_id_scheduled_at ON jobs (schedule_id, scheduled_at);
CREATE INDEX jobs_source_group_id ON jobs (source_group_id);
CREATE INDEX jobs_first_attempt_id ON jobs (first_attempt_id);

CREATE TABLE job_logs (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    stream TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE snapshots (
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    snapshot_id TEXT NOT NULL,
    short_id TEXT NOT NULL,
    time INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    paths TEXT NOT NULL DEFAULT '[]',
    tags TEXT NOT NULL DEFAULT '[]',
    size_bytes INTEGER,
    file_count INTEGER,
    reported_at INTEGER NOT NULL,
    PRIMARY KEY (host_id, snapshot_id)
);
CREATE INDEX snapshots_host_id_time ON snapshots (host_id, time);

CREATE TABLE repo_stats (
    id TEXT PRIMARY KEY NOT NULL,
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    recorded_at INTEGER NOT NULL,
    size_bytes INTEGER,
    snapshot_count INTEGER,
    dedup_ratio REAL,
    last_check_at INTEGER,
    last_check_status TEXT,
    lock_state TEXT
);
CREATE INDEX repo_stats_host_id_recorded_at ON repo_stats (host_id, recorded_at);

CREATE TABLE missed_runs (
    id TEXT PRIMARY KEY NOT NULL,
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    schedule_id TEXT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    scheduled_at INTEGER NOT NULL,
    detected_at INTEGER NOT NULL,
    UNIQUE (schedule_id, scheduled_at)
);
CREATE INDEX missed_runs_host_id_scheduled_at ON missed_runs (host_id, scheduled_at);
CREATE INDEX missed_runs_scheduled_at ON missed_runs (scheduled_at);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT,
    source_addr TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor_at ON audit_log (actor, at);
CREATE INDEX audit_log_action_at ON audit_log (action, at);
