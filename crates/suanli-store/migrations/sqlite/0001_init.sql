CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    category    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,      -- sha256 of the secret, hex
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    tenant      TEXT REFERENCES tenants(id),
    center      TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE centers (
    id          TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,         -- CenterSpec as JSON
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT NOT NULL REFERENCES tenants(id),
    submitted_by     TEXT NOT NULL,
    name             TEXT NOT NULL,
    queue            TEXT NOT NULL,
    priority         TEXT NOT NULL,
    spec             TEXT NOT NULL,    -- JobSpec as JSON
    state            TEXT NOT NULL,
    attempt          INTEGER NOT NULL, -- number of placements so far; the fencing epoch
    center           TEXT,
    sku              TEXT,
    alloc            TEXT,             -- node -> cards of the current attempt, JSON
    placement        TEXT,             -- the placement decision of the current attempt, JSON
    lease_expires_at INTEGER,
    submitted_at     INTEGER NOT NULL,
    started_at       INTEGER,
    ended_at         INTEGER,
    exit_code        INTEGER,
    reason           TEXT,
    card_seconds     INTEGER NOT NULL DEFAULT 0,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_tenant ON jobs(tenant, id);
CREATE INDEX jobs_center ON jobs(center, id);

CREATE TABLE job_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id   INTEGER NOT NULL REFERENCES jobs(id),
    at       INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    state    TEXT NOT NULL,
    message  TEXT NOT NULL
);
CREATE INDEX job_events_job ON job_events(job_id, id);

-- One row per hand-over to a center: what metering and billing read.
CREATE TABLE attempts (
    job_id       INTEGER NOT NULL REFERENCES jobs(id),
    attempt      INTEGER NOT NULL,
    center       TEXT NOT NULL,
    sku          TEXT NOT NULL,
    cards        INTEGER NOT NULL,
    placed_at    INTEGER NOT NULL,
    started_at   INTEGER,
    ended_at     INTEGER,
    outcome      TEXT,
    exit_code    INTEGER,
    card_seconds INTEGER NOT NULL DEFAULT 0,
    log_chunks   INTEGER,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE logs (
    job_id   INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    stream   TEXT NOT NULL,
    data     TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt, seq)
);
