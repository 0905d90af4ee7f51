-- Reverts 2026-11-23-000001_initial: children before parents.
DROP TABLE audit_log;
DROP TABLE missed_runs;
DROP TABLE repo_stats;
DROP TABLE snapshots;
DROP TABLE job_logs;
DROP TABLE jobs;
DROP TABLE host_schedule_version;
DROP TABLE schedule_source_groups;
DROP TABLE schedules;
DROP TABLE source_groups;
DROP TABLE enrollment_tokens;
DROP TABLE hosts;
DROP TABLE repositories;
DROP TABLE api_tokens;
DROP TABLE sessions;
DROP TABLE users;
