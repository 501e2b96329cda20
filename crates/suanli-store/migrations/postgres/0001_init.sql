-- PostgreSQL mirror of migrations/sqlite/0001_init.sql: same tables, columns and meaning.
-- Integers are BIGINT (timestamps are Unix milliseconds; the store binds i64 throughout).
-- Text keys that are ordered or compared use COLLATE "C" (bytewise, as SQLite's default BINARY),
-- so listings come back in the same order on both backends whatever the database's locale.
CREATE TABLE tenants (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    category    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,      -- sha256 of the secret, hex
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    tenant      TEXT COLLATE "C" REFERENCES tenants(id),
    center      TEXT COLLATE "C",
    created_at  BIGINT NOT NULL
);

CREATE TABLE centers (
    id          TEXT COLLATE "C" PRIMARY KEY,
    spec        TEXT NOT NULL,         -- CenterSpec as JSON
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE jobs (
    id               BIGSERIAL PRIMARY KEY,
    tenant           TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    submitted_by     TEXT NOT NULL,
    name             TEXT NOT NULL,
    queue            TEXT NOT NULL,
    priority         TEXT NOT NULL,
    spec             TEXT NOT NULL,    -- JobSpec as JSON
    state            TEXT COLLATE "C" NOT NULL,
    attempt          BIGINT NOT NULL,  -- number of placements so far; the fencing epoch
    center           TEXT COLLATE "C",
    sku              TEXT,
    alloc            TEXT,             -- node -> cards of the current attempt, JSON
    placement        TEXT,             -- the placement decision of the current attempt, JSON
    lease_expires_at BIGINT,
    submitted_at     BIGINT NOT NULL,
    started_at       BIGINT,
    ended_at         BIGINT,
    exit_code        BIGINT,
    reason           TEXT,
    card_seconds     BIGINT NOT NULL DEFAULT 0,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_tenant ON jobs(tenant, id);
CREATE INDEX jobs_center ON jobs(center, id);

CREATE TABLE job_events (
    id       BIGSERIAL PRIMARY KEY,
    job_id   BIGINT NOT NULL REFERENCES jobs(id),
    at       BIGINT NOT NULL,
    attempt  BIGINT NOT NULL,
    state    TEXT NOT NULL,
    message  TEXT NOT NULL
);
CREATE INDEX job_events_job ON job_events(job_id, id);

-- One row per hand-over to a center: what metering and billing read.
CREATE TABLE attempts (
    job_id       BIGINT NOT NULL REFERENCES jobs(id),
    attempt      BIGINT NOT NULL,
    center       TEXT NOT NULL,
    sku          TEXT NOT NULL,
    cards        BIGINT NOT NULL,
    placed_at    BIGINT NOT NULL,
    started_at   BIGINT,
    ended_at     BIGINT,
    outcome      TEXT,
    exit_code    BIGINT,
    card_seconds BIGINT NOT NULL DEFAULT 0,
    log_chunks   BIGINT,
    PRIMARY KEY (job_id, attempt)
);

-- `data` is BYTEA holding UTF-8: process output may contain NUL characters, which a PostgreSQL
-- TEXT value cannot hold (SQLite's TEXT can). The store writes and reads it as the string's bytes.
CREATE TABLE logs (
    job_id   BIGINT NOT NULL,
    attempt  BIGINT NOT NULL,
    seq      BIGINT NOT NULL,
    stream   TEXT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (job_id, attempt, seq)
);
