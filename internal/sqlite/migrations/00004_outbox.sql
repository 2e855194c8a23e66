-- +goose Up
-- Background work written in the same transaction as the change that calls
-- for it (an alert's webhook delivery, say), then done at least once by
-- workers that lease it. A lease that runs out (its worker died) makes the job
-- claimable again. Finished jobs stay a while for inspection.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,
    payload         BLOB    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    CHECK ((state = 'pending') = (finished_at IS NULL))
);
CREATE INDEX outbox_due ON outbox (kind, next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_finished ON outbox (finished_at) WHERE state <> 'pending';

-- Permissions keep the order they were given in, explicitly.
ALTER TABLE token_permissions ADD COLUMN position INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE token_permissions DROP COLUMN position;
DROP TABLE outbox;
