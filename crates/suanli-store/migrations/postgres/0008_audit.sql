-- The audit log (crates/suanli-audit, docs/SUPERVISION.md): one row per audited request,
-- `seq` is the leaf index in the Merkle tree, `prev` the leaf hash of entry seq - 1 and `leaf`
-- this entry's leaf hash as recorded when it was appended. Append-only: the store has no
-- update or delete path, and the triggers below refuse UPDATE, DELETE and TRUNCATE.
CREATE TABLE audit_entries (
    seq             BIGINT PRIMARY KEY,
    at              BIGINT NOT NULL,
    principal       TEXT NOT NULL,
    role            TEXT,
    tenant          TEXT,
    source          TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    action          TEXT NOT NULL,
    target          TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    status          BIGINT NOT NULL,
    why             TEXT,
    request_digest  TEXT NOT NULL,
    prev            TEXT NOT NULL,
    leaf            TEXT NOT NULL
);
CREATE INDEX audit_entries_at ON audit_entries (at);

-- Signed checkpoints: the tree of the first `size` entries has `root`.
CREATE TABLE audit_checkpoints (
    id         BIGSERIAL PRIMARY KEY,
    size       BIGINT NOT NULL,
    root       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    key_id     TEXT NOT NULL,
    signature  TEXT NOT NULL
);

-- The public keys of the hubs that signed checkpoints (each hub has its own).
CREATE TABLE audit_keys (
    key_id      TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    added_at    BIGINT NOT NULL
);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$;

CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_keys_append_only BEFORE UPDATE OR DELETE ON audit_keys
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_keys_no_truncate BEFORE TRUNCATE ON audit_keys
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
