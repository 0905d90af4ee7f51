CREATE INDEX schedules_host_id ON schedules (host_id);
DROP INDEX schedules_host_policy;
