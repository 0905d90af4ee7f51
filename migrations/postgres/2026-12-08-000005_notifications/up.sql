-- Notifications (issue 15 A): channels, the conditions that are active
-- (so that a failure that persists notifies once), and the outbox that
-- delivery reads. Outbox rows are written in the transaction of the change
-- that caused them; a row leaves `pending` only once delivered (or given
-- up after 24 h of retries).
CREATE TABLE notification_channels (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    url TEXT,
    secret_sealed BYTEA,
    recipients TEXT NOT NULL DEFAULT '[]',
    events TEXT NOT NULL,
    selector TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE notification_conditions (
    key TEXT PRIMARY KEY NOT NULL,
    host_id TEXT NOT NULL,
    event TEXT NOT NULL,
    since BIGINT NOT NULL
);

CREATE TABLE notification_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    channel_id TEXT NOT NULL REFERENCES notification_channels(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    delivered_at BIGINT,
    last_status INTEGER,
    last_error TEXT,
    summary_id TEXT
);
CREATE INDEX notification_outbox_due ON notification_outbox (status, next_attempt_at);
CREATE INDEX notification_outbox_channel ON notification_outbox (channel_id, created_at);
