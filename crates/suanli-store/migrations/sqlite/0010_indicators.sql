-- The statistics (crates/suanli-indicators, docs/INDICATORS.md). `indicator_facts`: what the
-- hub saw happen, in order, as JSON (a fact of the rollup, or the closing of the hours before a
-- time); the hub rebuilds its rollup from them at start. `releases`: the frozen quarterly
-- releases, their three files and the SHA-256 of release.json. Both are append-only: the store
-- has no update or delete path, and the triggers below refuse both.
CREATE TABLE indicator_facts (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    fact         TEXT NOT NULL,
    recorded_at  INTEGER NOT NULL
);

CREATE TABLE releases (
    quarter  TEXT PRIMARY KEY,
    made_at  INTEGER NOT NULL,
    json     TEXT NOT NULL,
    csv      TEXT NOT NULL,
    html     TEXT NOT NULL,
    sha256   TEXT NOT NULL
);

CREATE TRIGGER indicator_facts_no_update BEFORE UPDATE ON indicator_facts
BEGIN SELECT RAISE(ABORT, 'indicator_facts is append-only'); END;
CREATE TRIGGER indicator_facts_no_delete BEFORE DELETE ON indicator_facts
BEGIN SELECT RAISE(ABORT, 'indicator_facts is append-only'); END;
CREATE TRIGGER releases_no_update BEFORE UPDATE ON releases
BEGIN SELECT RAISE(ABORT, 'releases is append-only'); END;
CREATE TRIGGER releases_no_delete BEFORE DELETE ON releases
BEGIN SELECT RAISE(ABORT, 'releases is append-only'); END;
