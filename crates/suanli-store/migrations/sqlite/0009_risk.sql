-- Risk flags (crates/suanli-audit/src/risk.rs, docs/SUPERVISION.md). A flag's id is stable
-- (`rule/subject/window`); a later evaluation of the same window may add evidence to it, so the
-- row's evidence, count, detail and last_seen grow. Its states are an append-only history: each
-- state is entered at most once (states only move forward), naming who and why.
CREATE TABLE risk_flags (
    id          TEXT PRIMARY KEY,
    rule        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    count       INTEGER NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    raised_at   INTEGER NOT NULL
);
CREATE INDEX risk_flags_raised ON risk_flags (raised_at);

CREATE TABLE risk_flag_changes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    flag          TEXT NOT NULL REFERENCES risk_flags(id),
    state         TEXT NOT NULL,
    by_principal  TEXT NOT NULL,
    why           TEXT NOT NULL,
    at            INTEGER NOT NULL,
    UNIQUE (flag, state)
);

CREATE TRIGGER risk_flags_no_delete BEFORE DELETE ON risk_flags
BEGIN SELECT RAISE(ABORT, 'risk_flags is append-only: never deleted'); END;
CREATE TRIGGER risk_flag_changes_no_update BEFORE UPDATE ON risk_flag_changes
BEGIN SELECT RAISE(ABORT, 'risk_flag_changes is append-only'); END;
CREATE TRIGGER risk_flag_changes_no_delete BEFORE DELETE ON risk_flag_changes
BEGIN SELECT RAISE(ABORT, 'risk_flag_changes is append-only'); END;

-- The risk rules read the attempts that ended recently.
CREATE INDEX attempts_ended_at ON attempts (ended_at);
