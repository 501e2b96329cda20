-- The model library and adaptation certification (crates/suanli-models, docs/MODELS.md).
-- `models`: a model revision as published (its record as JSON); a name and revision are
-- published once. `certifications`: a benchmark run asked for (model, center, chip SKU, stack
-- and its version there, framework version, the job). `certification_steps`: what happened to
-- it, each step once: its `outcome` (the judged result, JSON) when the job ended, then its
-- `review` (accept or reject, by whom, why). All three are append-only: the store has no
-- update or delete path, and the triggers below refuse UPDATE, DELETE and TRUNCATE.
CREATE TABLE models (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL,
    revision      TEXT NOT NULL,
    owner         TEXT,
    spec          TEXT NOT NULL,
    published_by  TEXT NOT NULL,
    published_at  BIGINT NOT NULL,
    UNIQUE (name, revision)
);

CREATE TABLE certifications (
    id                 BIGSERIAL PRIMARY KEY,
    model              BIGINT NOT NULL REFERENCES models(id),
    center             TEXT NOT NULL,
    sku                TEXT NOT NULL,
    stack              TEXT NOT NULL,
    stack_version      TEXT NOT NULL,
    framework_version  TEXT NOT NULL,
    job                BIGINT NOT NULL UNIQUE,
    tenant             TEXT NOT NULL,
    requested_by       TEXT NOT NULL,
    requested_at       BIGINT NOT NULL
);
CREATE INDEX certifications_model ON certifications (model);

CREATE TABLE certification_steps (
    id             BIGSERIAL PRIMARY KEY,
    certification  BIGINT NOT NULL REFERENCES certifications(id),
    step           TEXT NOT NULL CHECK (step IN ('outcome', 'review')),
    outcome        TEXT,
    verdict        TEXT CHECK (verdict IN ('accept', 'reject')),
    by_principal   TEXT,
    reason         TEXT,
    at             BIGINT NOT NULL,
    UNIQUE (certification, step)
);

CREATE FUNCTION models_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$;

CREATE TRIGGER models_append_only BEFORE UPDATE OR DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION models_append_only();
CREATE TRIGGER models_no_truncate BEFORE TRUNCATE ON models
    FOR EACH STATEMENT EXECUTE FUNCTION models_append_only();
CREATE TRIGGER certifications_append_only BEFORE UPDATE OR DELETE ON certifications
    FOR EACH ROW EXECUTE FUNCTION models_append_only();
CREATE TRIGGER certifications_no_truncate BEFORE TRUNCATE ON certifications
    FOR EACH STATEMENT EXECUTE FUNCTION models_append_only();
CREATE TRIGGER certification_steps_append_only BEFORE UPDATE OR DELETE ON certification_steps
    FOR EACH ROW EXECUTE FUNCTION models_append_only();
CREATE TRIGGER certification_steps_no_truncate BEFORE TRUNCATE ON certification_steps
    FOR EACH STATEMENT EXECUTE FUNCTION models_append_only();
