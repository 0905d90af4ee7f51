-- How many hosts are not revoked, SQLite dialect; kept in step with
-- migrations/postgres/2026-12-15-000001_live_host_count/up.sql.
--
-- The host list's total without a filter (its first page, the one every
-- operator opens) read from one row instead of counted: a count of the
-- hosts is a scan of them, about 1 ms per 10,000 hosts on PostgreSQL.
-- Triggers keep the row in step with every insert, delete and revocation,
-- inside the transaction that makes it (`store::hosts::list`).
CREATE TABLE host_totals (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    live INTEGER NOT NULL
);
INSERT INTO host_totals (id, live) SELECT 1, COUNT(*) FROM hosts WHERE revoked_at IS NULL;

CREATE TRIGGER hosts_live_insert AFTER INSERT ON hosts WHEN NEW.revoked_at IS NULL BEGIN
    UPDATE host_totals SET live = live + 1 WHERE id = 1;
END;
CREATE TRIGGER hosts_live_delete AFTER DELETE ON hosts WHEN OLD.revoked_at IS NULL BEGIN
    UPDATE host_totals SET live = live - 1 WHERE id = 1;
END;
CREATE TRIGGER hosts_live_revoke AFTER UPDATE OF revoked_at ON hosts
    WHEN (OLD.revoked_at IS NULL) <> (NEW.revoked_at IS NULL) BEGIN
    UPDATE host_totals
        SET live = live + CASE WHEN NEW.revoked_at IS NULL THEN 1 ELSE -1 END
        WHERE id = 1;
END;
