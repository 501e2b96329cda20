-- The model library and adaptation certification (crates/suanli-models, docs/MODELS.md).
-- `models`: a model revision as published (its record as JSON); a name and revision are
-- published once. `certifications`: a benchmark run asked for (model, center, chip SKU, stack
-- and its version there, framework version, the job). `certification_steps`: what happened to
-- it, each step once: its `outcome` (the judged result, JSON) when the job ended, then its
-- `review` (accept or reject, by whom, why). All three are append-only: the store has no
-- update or delete path, and the triggers below refuse both.
CREATE TABLE models (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    revision      TEXT NOT NULL,
    owner         TEXT,
    spec          TEXT NOT NULL,
    published_by  TEXT NOT NULL,
    published_at  INTEGER NOT NULL,
    UNIQUE (name, revision)
);

CREATE TABLE certifications (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    model              INTEGER NOT NULL REFERENCES models(id),
    center             TEXT NOT NULL,
    sku                TEXT NOT NULL,
    stack              TEXT NOT NULL,
    stack_version      TEXT NOT NULL,
    framework_version  TEXT NOT NULL,
    job                INTEGER NOT NULL UNIQUE,
    tenant             TEXT NOT NULL,
    requested_by       TEXT NOT NULL,
    requested_at       INTEGER NOT NULL
);
CREATE INDEX certifications_model ON certifications (model);

CREATE TABLE certification_steps (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    certification  INTEGER NOT NULL REFERENCES certifications(id),
    step           TEXT NOT NULL CHECK (step IN ('outcome', 'review')),
    outcome        TEXT,
    verdict        TEXT CHECK (verdict IN ('accept', 'reject')),
    by_principal   TEXT,
    reason         TEXT,
    at             INTEGER NOT NULL,
    UNIQUE (certification, step)
);

CREATE TRIGGER models_no_update BEFORE UPDATE ON models
BEGIN SELECT RAISE(ABORT, 'models is append-only'); END;
CREATE TRIGGER models_no_delete BEFORE DELETE ON models
BEGIN SELECT RAISE(ABORT, 'models is append-only'); END;
CREATE TRIGGER certifications_no_update BEFORE UPDATE ON certifications
BEGIN SELECT RAISE(ABORT, 'certifications is append-only'); END;
CREATE TRIGGER certifications_no_delete BEFORE DELETE ON certifications
BEGIN SELECT RAISE(ABORT, 'certifications is append-only'); END;
CREATE TRIGGER certification_steps_no_update BEFORE UPDATE ON certification_steps
BEGIN SELECT RAISE(ABORT, 'certification_steps is append-only'); END;
CREATE TRIGGER certification_steps_no_delete BEFORE DELETE ON certification_steps
BEGIN SELECT RAISE(ABORT, 'certification_steps is append-only'); END;
