-- Issue 13 §2: the latest Docker discovery report of each host (the
-- running containers its agent found), replaced whole by every
-- `discovery.report`. `containers` is the report's JSON list (secret
-- environment values already removed); `received_at` is Unix ms.
CREATE TABLE host_discovery (
    host_id TEXT PRIMARY KEY NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    containers TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
