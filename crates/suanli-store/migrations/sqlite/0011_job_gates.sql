-- When a job may start (sbatch's --hold and --array; dependencies and begin times are in the
-- spec): `held` while its submitter holds it; the tasks of an array are jobs of their own, each
-- with the array's id (the first task's job id) and its task id, listed and cancelled together.
ALTER TABLE jobs ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN array_job_id INTEGER;
ALTER TABLE jobs ADD COLUMN array_task_id INTEGER;
CREATE INDEX jobs_array ON jobs(array_job_id, id) WHERE array_job_id IS NOT NULL;
