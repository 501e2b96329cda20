-- Tokens get an id (the principal id: permissions are decided by it, never by name), an expiry,
-- a revocation time (a future one is the end of a rotation's grace), the scope their name is
-- unique in among tokens not revoked ('platform', 'tenant:<id>' or 'center:<id>'), and when they
-- were last used (updated at most once a minute). A revocation bumps the generation, which every
-- hub checks before it trusts a principal it cached. Jobs record the id of the token that
-- submitted them.
CREATE TABLE tokens_v2 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    hash         TEXT NOT NULL UNIQUE,   -- sha256 of the secret, hex
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    tenant       TEXT REFERENCES tenants(id),
    center       TEXT,
    scope        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
INSERT INTO tokens_v2 (hash, name, role, tenant, center, scope, created_at)
    SELECT hash, name, role, tenant, center,
           CASE WHEN tenant IS NOT NULL THEN 'tenant:' || tenant
                WHEN center IS NOT NULL THEN 'center:' || center
                ELSE 'platform' END,
           created_at
    FROM tokens ORDER BY created_at, rowid;
DROP TABLE tokens;
ALTER TABLE tokens_v2 RENAME TO tokens;
-- Names issued before names were unique keep working under a unique name.
UPDATE tokens SET name = name || '#' || id
    WHERE id NOT IN (SELECT MIN(id) FROM tokens GROUP BY scope, name);
CREATE UNIQUE INDEX tokens_live_name ON tokens(scope, name) WHERE revoked_at IS NULL;
CREATE INDEX tokens_role ON tokens(role);

CREATE TABLE token_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  INTEGER NOT NULL
);
INSERT INTO token_generation (id, generation) VALUES (1, 0);

ALTER TABLE jobs ADD COLUMN submitted_by_id INTEGER;
