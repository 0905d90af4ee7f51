-- Issue 19 (log ingest on PostgreSQL), postgres dialect; kept in step with
-- the other dialect's migration of the same name (which changes nothing).
--
-- The foreign key from job_logs to jobs was checked for every inserted
-- line (a `SELECT … FOR KEY SHARE` on jobs per row), which more than
-- doubled the cost of a line and bound log ingest to the writer's backend.
-- The server now takes the same lock once per batch for the batch's jobs
-- (store::job_logs_pg) and stores no line of a job that is gone; a job's
-- lines are deleted with the job by this trigger, as the key's cascade did
-- (row by row, through the primary key's job_id prefix, as the cascade).
ALTER TABLE job_logs DROP CONSTRAINT job_logs_job_id_fkey;
CREATE FUNCTION jobs_delete_logs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_logs WHERE job_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_delete_logs AFTER DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobs_delete_logs();
