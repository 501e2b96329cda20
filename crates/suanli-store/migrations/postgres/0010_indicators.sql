-- The statistics (crates/suanli-indicators, docs/INDICATORS.md). `indicator_facts`: what the
-- hub saw happen, in order, as JSON (a fact of the rollup, or the closing of the hours before a
-- time); the hub rebuilds its rollup from them at start. `releases`: the frozen quarterly
-- releases, their three files and the SHA-256 of release.json. Both are append-only: the store
-- has no update or delete path, and the triggers below refuse UPDATE, DELETE and TRUNCATE.
CREATE TABLE indicator_facts (
    seq          BIGSERIAL PRIMARY KEY,
    at           BIGINT NOT NULL,
    fact         TEXT NOT NULL,
    recorded_at  BIGINT NOT NULL
);

CREATE TABLE releases (
    quarter  TEXT PRIMARY KEY,
    made_at  BIGINT NOT NULL,
    json     TEXT NOT NULL,
    csv      TEXT NOT NULL,
    html     TEXT NOT NULL,
    sha256   TEXT NOT NULL
);

CREATE FUNCTION statistics_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$;

CREATE TRIGGER indicator_facts_append_only BEFORE UPDATE OR DELETE ON indicator_facts
    FOR EACH ROW EXECUTE FUNCTION statistics_append_only();
CREATE TRIGGER indicator_facts_no_truncate BEFORE TRUNCATE ON indicator_facts
    FOR EACH STATEMENT EXECUTE FUNCTION statistics_append_only();
CREATE TRIGGER releases_append_only BEFORE UPDATE OR DELETE ON releases
    FOR EACH ROW EXECUTE FUNCTION statistics_append_only();
CREATE TRIGGER releases_no_truncate BEFORE TRUNCATE ON releases
    FOR EACH STATEMENT EXECUTE FUNCTION statistics_append_only();
