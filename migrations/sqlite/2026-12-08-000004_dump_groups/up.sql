-- Dump source groups (issue 13 §1): a group backs up files (every group
-- stored before this) or the output of a database dump tool. `dump` is
-- the DumpSpec as JSON without its password; the password is sealed like
-- repository secrets (crypto::seal, bound to the group's id).
ALTER TABLE source_groups ADD COLUMN kind TEXT NOT NULL DEFAULT 'files';
ALTER TABLE source_groups ADD COLUMN dump TEXT;
ALTER TABLE source_groups ADD COLUMN dump_password_sealed BLOB;

