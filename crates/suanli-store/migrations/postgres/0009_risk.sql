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
    count       BIGINT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    raised_at   BIGINT NOT NULL
);
CREATE INDEX risk_flags_raised ON risk_flags (raised_at);

CREATE TABLE risk_flag_changes (
    id            BIGSERIAL PRIMARY KEY,
    flag          TEXT NOT NULL REFERENCES risk_flags(id),
    state         TEXT NOT NULL,
    by_principal  TEXT NOT NULL,
    why           TEXT NOT NULL,
    at            BIGINT NOT NULL,
    UNIQUE (flag, state)
);

CREATE TRIGGER risk_flags_no_delete BEFORE DELETE OR TRUNCATE ON risk_flags
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER risk_flag_changes_append_only BEFORE UPDATE OR DELETE ON risk_flag_changes
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER risk_flag_changes_no_truncate BEFORE TRUNCATE ON risk_flag_changes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- The risk rules read the attempts that ended recently.
CREATE INDEX attempts_ended_at ON attempts (ended_at);
