DROP TRIGGER jobs_delete_logs ON jobs;
DROP FUNCTION jobs_delete_logs();
DELETE FROM job_logs WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_logs.job_id);
ALTER TABLE job_logs ADD CONSTRAINT job_logs_job_id_fkey
    FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE;
