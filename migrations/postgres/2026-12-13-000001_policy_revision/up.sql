-- Issue 12 §7 (`hello` with 20 policies), postgres dialect; kept in step
-- with the other dialect's migration of the same name.
--
-- One row whose `revision` takes a new random value with every write to
-- `policies` (a trigger: whichever process writes, the server, `apply`, a
-- hand-made SQL edit). The greeting reads it (one row) to know that the
-- policies it parsed and rendered in memory are still the stored ones
-- (store::schedule_set), instead of reading every policy's texts with
-- every `hello`. Random rather than counted, so that two databases in one
-- process, or a database restored from a copy, never present the same
-- value for different policies. 64 random bits from two random() draws.
CREATE FUNCTION policy_revision_random() RETURNS BIGINT LANGUAGE sql VOLATILE AS $$
    SELECT (floor(random() * 4294967296)::bigint << 32) # floor(random() * 4294967296)::bigint
$$;
CREATE TABLE policy_revision (
    id INTEGER PRIMARY KEY NOT NULL,
    revision BIGINT NOT NULL
);
INSERT INTO policy_revision (id, revision) VALUES (1, policy_revision_random());
CREATE FUNCTION policies_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE policy_revision SET revision = policy_revision_random() WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER policies_revision AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH STATEMENT EXECUTE FUNCTION policies_revision();
