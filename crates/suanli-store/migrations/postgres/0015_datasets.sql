-- Datasets that stay home, their grants, and the airlock (crates/suanli-data, issue #16).
-- `datasets`: a dataset as its owner tenant registered it (its record as JSON); registering
-- the name again replaces the record, by the same owner only. `dataset_grants`: a tenant may
-- compute on a restricted or sensitive dataset; a new grant is a new row, a revocation stamps
-- `revoked_at` on the grants not revoked; the newest grant counts. `airlock_requests`: a
-- request to release a job's quarantined outputs, its whole record (checks, reviews, history)
-- as JSON, with its state, the job's tenant and the data owner beside it for listing; `steps`
-- is the length of its history, which only grows: an update must bring more steps than are
-- stored, so a write from a stale read is refused.
CREATE TABLE datasets (
    name           TEXT COLLATE "C" PRIMARY KEY,
    owner          TEXT COLLATE "C" NOT NULL,
    spec           TEXT NOT NULL,
    registered_by  TEXT NOT NULL,
    registered_at  BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX datasets_owner ON datasets (owner);

CREATE TABLE dataset_grants (
    dataset     TEXT COLLATE "C" NOT NULL REFERENCES datasets(name),
    tenant      TEXT COLLATE "C" NOT NULL,
    granted_by  TEXT NOT NULL,
    granted_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT,
    PRIMARY KEY (dataset, tenant, granted_at)
);

CREATE TABLE airlock_requests (
    id          BIGSERIAL PRIMARY KEY,
    job_id      BIGINT NOT NULL REFERENCES jobs(id),
    tenant      TEXT COLLATE "C" NOT NULL,
    owner       TEXT COLLATE "C" NOT NULL,
    state       TEXT NOT NULL
                CHECK (state IN ('in-review', 'approved', 'rejected', 'blocked')),
    record      TEXT NOT NULL,
    steps       BIGINT NOT NULL CHECK (steps >= 0),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX airlock_requests_job_id ON airlock_requests (job_id);
CREATE INDEX airlock_requests_owner ON airlock_requests (owner);
