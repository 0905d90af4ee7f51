-- Restore and catalog jobs read one snapshot; restore (and later kinds)
-- carry parameters of their own as a JSON object.
ALTER TABLE jobs ADD COLUMN snapshot_id TEXT;
ALTER TABLE jobs ADD COLUMN params TEXT;
