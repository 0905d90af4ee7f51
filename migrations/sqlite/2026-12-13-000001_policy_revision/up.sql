-- Issue 12 §7 (`hello` with 20 policies), sqlite dialect; kept in step
-- with the other dialect's migration of the same name.
--
-- One row whose `revision` takes a new random value with every write to
-- `policies` (triggers: whichever process writes, the server, `apply`, a
-- hand-made SQL edit). The greeting reads it (one row) to know that the
-- policies it parsed and rendered in memory are still the stored ones
-- (store::schedule_set), instead of reading every policy's texts with
-- every `hello`. Random rather than counted, so that two databases in one
-- process, or a database restored from a copy, never present the same
-- value for different policies.
CREATE TABLE policy_revision (
    id INTEGER PRIMARY KEY NOT NULL,
    revision BIGINT NOT NULL
);
INSERT INTO policy_revision (id, revision) VALUES (1, random());
CREATE TRIGGER policies_revision_insert AFTER INSERT ON policies
BEGIN
    UPDATE policy_revision SET revision = random() WHERE id = 1;
END;
CREATE TRIGGER policies_revision_update AFTER UPDATE ON policies
BEGIN
    UPDATE policy_revision SET revision = random() WHERE id = 1;
END;
CREATE TRIGGER policies_revision_delete AFTER DELETE ON policies
BEGIN
    UPDATE policy_revision SET revision = random() WHERE id = 1;
END;
