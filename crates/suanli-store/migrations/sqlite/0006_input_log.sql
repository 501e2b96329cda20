-- The hub engine's input log: every input of its state (start snapshots, submits, cancels,
-- reports, heartbeats, ticks, passes...) as JSON, append-only, in the order noted. `suanli
-- replay` runs it through the same lifecycle and core and reproduces the live decisions.
CREATE TABLE hub_inputs (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    input   TEXT NOT NULL
);
