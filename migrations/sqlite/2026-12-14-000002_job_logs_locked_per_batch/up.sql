-- Issue 19: PostgreSQL's dialect replaces the per-line foreign key check of
-- job_logs with one lock per batch and a delete trigger. SQLite checks its
-- keys in-process, cheaply; its foreign key stays (no change here, the
-- migration keeps the two dialects' histories in step).
SELECT 1;
