ALTER TABLE source_groups DROP COLUMN prune_after_forget;
ALTER TABLE schedules DROP COLUMN kind;
