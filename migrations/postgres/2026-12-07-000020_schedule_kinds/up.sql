-- Schedule kinds (issue 12 §2): what a schedule's fire creates. Every
-- schedule stored before this was a backup schedule, hence the default.
ALTER TABLE schedules ADD COLUMN kind TEXT NOT NULL DEFAULT 'backup';

-- A group's retention forget also prunes (restic forget --prune) when set.
ALTER TABLE source_groups ADD COLUMN prune_after_forget BOOLEAN NOT NULL DEFAULT FALSE;
