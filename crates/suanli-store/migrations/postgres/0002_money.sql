-- The money books (suanli-money): every `Record` as JSON, append-only, in the order appended.
-- The hub rebuilds its books by replaying them; corrections are new records, never updates.
CREATE TABLE money_records (
    seq     BIGSERIAL PRIMARY KEY,
    record  TEXT NOT NULL
);
