-- The files a job leaves, as its site uploaded them: one row per (job, attempt, relative path,
-- '/'-separated), with the job's tenant, the size in bytes and the SHA-256 (64 lowercase hex) by
-- which the content-addressed blob store outside the database keeps the content. An upload sent
-- again replaces its row. Rows are deleted when they expire, or when a later attempt supersedes
-- them; the blob store drops a content once no row names its hash.
CREATE TABLE job_outputs (
    job_id      BIGINT NOT NULL REFERENCES jobs(id),
    attempt     BIGINT NOT NULL CHECK (attempt >= 0),
    path        TEXT COLLATE "C" NOT NULL,
    tenant      TEXT COLLATE "C" NOT NULL,
    size        BIGINT NOT NULL CHECK (size >= 0),
    sha256      TEXT COLLATE "C" NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (job_id, attempt, path)
);
CREATE INDEX job_outputs_tenant ON job_outputs (tenant);
CREATE INDEX job_outputs_sha256 ON job_outputs (sha256);
CREATE INDEX job_outputs_expires_at ON job_outputs (expires_at);
