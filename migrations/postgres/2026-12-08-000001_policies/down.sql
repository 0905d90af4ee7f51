DROP INDEX schedules_policy_id;
DROP INDEX source_groups_policy_id;
DELETE FROM schedules WHERE policy_id IS NOT NULL;
DELETE FROM source_groups WHERE policy_id IS NOT NULL;
ALTER TABLE schedules DROP COLUMN policy_position;
ALTER TABLE schedules DROP COLUMN policy_id;
ALTER TABLE source_groups DROP COLUMN policy_id;
DROP TABLE policies;
