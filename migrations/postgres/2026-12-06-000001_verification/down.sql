DROP TABLE check_runs;
DROP TABLE check_rotation;
DROP INDEX jobs_kind_status_host_tag_finished;
