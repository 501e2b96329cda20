-- Leadership among hubs that share this database: one row. `epoch` is the fencing token; it grows
-- by one whenever another hub (or a new term of the same hub) takes the lease. Times are
-- milliseconds since the Unix epoch by the database server's clock.
CREATE TABLE hub_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    url TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
INSERT INTO hub_lease (id, holder, url, epoch, expires_at) VALUES (1, '', '', 0, 0);

-- Centers the operator drained: no new work is placed there until undrained.
ALTER TABLE centers ADD COLUMN drained BOOLEAN NOT NULL DEFAULT FALSE;
