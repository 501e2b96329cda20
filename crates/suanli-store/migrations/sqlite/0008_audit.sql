-- The audit log (crates/suanli-audit, docs/SUPERVISION.md): one row per audited request,
-- `seq` is the leaf index in the Merkle tree, `prev` the leaf hash of entry seq - 1 and `leaf`
-- this entry's leaf hash as recorded when it was appended. Append-only: the store has no
-- update or delete path, and the triggers below refuse both.
CREATE TABLE audit_entries (
    seq             INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    principal       TEXT NOT NULL,
    role            TEXT,
    tenant          TEXT,
    source          TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    action          TEXT NOT NULL,
    target          TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    status          INTEGER NOT NULL,
    why             TEXT,
    request_digest  TEXT NOT NULL,
    prev            TEXT NOT NULL,
    leaf            TEXT NOT NULL
);
CREATE INDEX audit_entries_at ON audit_entries (at);

-- Signed checkpoints: the tree of the first `size` entries has `root`.
CREATE TABLE audit_checkpoints (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    size       INTEGER NOT NULL,
    root       TEXT NOT NULL,
    at         INTEGER NOT NULL,
    key_id     TEXT NOT NULL,
    signature  TEXT NOT NULL
);

-- The public keys of the hubs that signed checkpoints (each hub has its own).
CREATE TABLE audit_keys (
    key_id      TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    added_at    INTEGER NOT NULL
);

CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_keys_no_update BEFORE UPDATE ON audit_keys
BEGIN SELECT RAISE(ABORT, 'audit_keys is append-only'); END;
CREATE TRIGGER audit_keys_no_delete BEFORE DELETE ON audit_keys
BEGIN SELECT RAISE(ABORT, 'audit_keys is append-only'); END;
