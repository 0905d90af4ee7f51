-- How many hosts are not revoked, PostgreSQL dialect; kept in step with
-- migrations/sqlite/2026-12-15-000001_live_host_count/up.sql.
--
-- The host list's total without a filter (its first page, the one every
-- operator opens) read from one row instead of counted: a count of the
-- hosts is a scan of them, about 1 ms per 10,000 hosts here. Row triggers
-- keep it in step with every insert, delete and revocation, inside the
-- transaction that makes it; their WHEN clauses leave the frequent host
-- updates (hello, presence, last backup) untouched.
CREATE TABLE host_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    live BIGINT NOT NULL
);
INSERT INTO host_totals (id, live) SELECT 1, COUNT(*) FROM hosts WHERE revoked_at IS NULL;

CREATE FUNCTION hosts_live_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE host_totals SET live = live + 1 WHERE id = 1;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE host_totals SET live = live - 1 WHERE id = 1;
    ELSIF NEW.revoked_at IS NULL THEN
        UPDATE host_totals SET live = live + 1 WHERE id = 1;
    ELSE
        UPDATE host_totals SET live = live - 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER hosts_live_insert AFTER INSERT ON hosts
    FOR EACH ROW WHEN (NEW.revoked_at IS NULL) EXECUTE FUNCTION hosts_live_count();
CREATE TRIGGER hosts_live_delete AFTER DELETE ON hosts
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL) EXECUTE FUNCTION hosts_live_count();
CREATE TRIGGER hosts_live_revoke AFTER UPDATE OF revoked_at ON hosts
    FOR EACH ROW WHEN ((OLD.revoked_at IS NULL) <> (NEW.revoked_at IS NULL))
    EXECUTE FUNCTION hosts_live_count();
