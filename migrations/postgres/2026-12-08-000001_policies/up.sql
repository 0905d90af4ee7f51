-- Policies by label (issue 12 §1): source groups and schedules that every
-- host whose labels match the selector gets. The policy row holds its
-- groups and schedules as given (JSON); each matching host gets its own
-- rows in source_groups / schedules marked with policy_id (and, for
-- schedules, the position in the policy's list), so that fires, run-now,
-- schedule.set and the reports read one host's rows as before.
CREATE TABLE policies (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    selector TEXT NOT NULL DEFAULT '{}',
    source_groups TEXT NOT NULL DEFAULT '[]',
    schedules TEXT NOT NULL DEFAULT '[]',
    repository_id TEXT REFERENCES repositories (id) ON DELETE SET NULL,
    options TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- No foreign key: the policy's code removes its rows itself (as on
-- SQLite, which cannot drop a column that has one).
ALTER TABLE source_groups ADD COLUMN policy_id TEXT;
ALTER TABLE schedules ADD COLUMN policy_id TEXT;
ALTER TABLE schedules ADD COLUMN policy_position INTEGER;
CREATE INDEX source_groups_policy_id ON source_groups (policy_id, name);
CREATE INDEX schedules_policy_id ON schedules (policy_id, policy_position);
