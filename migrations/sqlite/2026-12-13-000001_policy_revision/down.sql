DROP TRIGGER policies_revision_delete;
DROP TRIGGER policies_revision_update;
DROP TRIGGER policies_revision_insert;
DROP TABLE policy_revision;
