-- Centers the operator drained: no new work is placed there until undrained. (Hub leadership is a
-- PostgreSQL feature: one hub serves an SQLite file.)
ALTER TABLE centers ADD COLUMN drained INTEGER NOT NULL DEFAULT 0;
