-- +goose Up
-- What DNS says about each sending domain: the random value its ownership
-- record must carry, when DNS proved it (verified_at), whether an operator
-- trusts it by hand, and the last check's result per record (JSON). A name is
-- verified (or trusted) by one account at most: the unique index holds it
-- even when two accounts' checks finish at once.
CREATE TABLE domain_dns (
    domain_id     INTEGER PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    account_id    INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    verify_value  TEXT    NOT NULL,
    verified_at   INTEGER,
    trusted_at    INTEGER,
    trusted_by    TEXT    NOT NULL DEFAULT '',
    claimed       INTEGER NOT NULL DEFAULT 0 CHECK (claimed IN (0, 1)),
    checked_at    INTEGER,
    check_error   TEXT    NOT NULL DEFAULT '',
    records       TEXT    NOT NULL DEFAULT '{}',
    failures      INTEGER NOT NULL DEFAULT 0,
    checks        INTEGER NOT NULL DEFAULT 0,
    next_check_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX domain_dns_claimed_name ON domain_dns (name) WHERE claimed = 1;
CREATE INDEX domain_dns_due ON domain_dns (next_check_at);
CREATE INDEX domain_dns_account ON domain_dns (account_id);

-- +goose Down
DROP TABLE domain_dns;
