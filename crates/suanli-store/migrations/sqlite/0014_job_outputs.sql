-- The files a job leaves, as its site uploaded them: one row per (job, attempt, relative path,
-- '/'-separated), with the job's tenant, the size in bytes and the SHA-256 (64 lowercase hex) by
-- which the content-addressed blob store outside the database keeps the content. An upload sent
-- again replaces its row. Rows are deleted when they expire, or when a later attempt supersedes
-- them; the blob store drops a content once no row names its hash.
CREATE TABLE job_outputs (
    job_id      INTEGER NOT NULL REFERENCES jobs(id),
    attempt     INTEGER NOT NULL CHECK (attempt >= 0),
    path        TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    sha256      TEXT NOT NULL
                CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt, path)
);
CREATE INDEX job_outputs_tenant ON job_outputs (tenant);
CREATE INDEX job_outputs_sha256 ON job_outputs (sha256);
CREATE INDEX job_outputs_expires_at ON job_outputs (expires_at);
