DROP TRIGGER policies_revision ON policies;
DROP FUNCTION policies_revision();
DROP TABLE policy_revision;
DROP FUNCTION policy_revision_random();
