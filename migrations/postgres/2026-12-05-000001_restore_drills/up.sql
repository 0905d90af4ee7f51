-- Restore drills (issue 11 §4): where the next drill of a host's source
-- group starts in its newest catalogued snapshot's file list, so that
-- successive drills cover different files (wrapping at the end).
CREATE TABLE drill_rotation (
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    source_group TEXT NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (host_id, source_group)
);
