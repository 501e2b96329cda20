-- Tokens get an id (the principal id: permissions are decided by it, never by name), an expiry,
-- a revocation time (a future one is the end of a rotation's grace), the scope their name is
-- unique in among tokens not revoked ('platform', 'tenant:<id>' or 'center:<id>'), and when they
-- were last used (updated at most once a minute). A revocation bumps the generation, which every
-- hub checks before it trusts a principal it cached. Jobs record the id of the token that
-- submitted them.
ALTER TABLE tokens ADD COLUMN id BIGSERIAL;
ALTER TABLE tokens ADD CONSTRAINT tokens_id_key UNIQUE (id);
ALTER TABLE tokens ADD COLUMN scope TEXT COLLATE "C";
UPDATE tokens SET scope = CASE WHEN tenant IS NOT NULL THEN 'tenant:' || tenant
                               WHEN center IS NOT NULL THEN 'center:' || center
                               ELSE 'platform' END;
ALTER TABLE tokens ALTER COLUMN scope SET NOT NULL;
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE tokens ADD COLUMN revoked_at BIGINT;
ALTER TABLE tokens ADD COLUMN last_used_at BIGINT;
UPDATE tokens SET name = name || '#' || id
    WHERE id NOT IN (SELECT MIN(id) FROM tokens GROUP BY scope, name);
CREATE UNIQUE INDEX tokens_live_name ON tokens(scope, name) WHERE revoked_at IS NULL;
CREATE INDEX tokens_role ON tokens(role);

CREATE TABLE token_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  BIGINT NOT NULL
);
INSERT INTO token_generation (id, generation) VALUES (1, 0);

ALTER TABLE jobs ADD COLUMN submitted_by_id BIGINT;
