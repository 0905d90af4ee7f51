ALTER TABLE source_groups DROP COLUMN dump_password_sealed;
ALTER TABLE source_groups DROP COLUMN dump;
ALTER TABLE source_groups DROP COLUMN kind;
