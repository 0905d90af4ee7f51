-- Issue 19: PostgreSQL's dialect drops the index on hosts.online and
-- leaves room in the pages of hosts and host_schedule_version for HOT
-- updates. SQLite rewrites a row in place and has no fillfactor; its
-- index on online stays (no change here, the migration keeps the two
-- dialects' histories in step).
SELECT 1;
