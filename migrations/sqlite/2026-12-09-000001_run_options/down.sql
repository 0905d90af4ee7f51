UPDATE hosts SET repository_id = NULL WHERE repository_policy_id IS NOT NULL;
ALTER TABLE hosts DROP COLUMN repository_policy_id;
ALTER TABLE source_groups DROP COLUMN options;
