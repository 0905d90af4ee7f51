-- Issue 12 §7 (`hello` with 20 policies): a host's policy schedules read
-- from the index alone, sqlite dialect; kept in step with the other
-- dialect's migration of the same name. A policy writes its rows for all
-- its hosts at once, so one host's policy schedules lie on as many table
-- pages as it has policies; the greeting needs only their ids, policies,
-- positions and creation times (the rest comes from the policy row:
-- store::schedule_set), which this index holds clustered by host. Its
-- leading column serves every lookup by host, so the index on host_id
-- alone goes.
CREATE INDEX schedules_host_policy ON schedules (host_id, policy_id, policy_position, created_at, id);
DROP INDEX schedules_host_id;
