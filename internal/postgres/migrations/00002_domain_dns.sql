-- +goose Up
-- The SQLite store's migration 00007: what DNS says about each sending
-- domain; a name is verified (or trusted) by one account at most.
CREATE TABLE domain_dns (
    domain_id     BIGINT  PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    account_id    BIGINT  NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    verify_value  TEXT    NOT NULL,
    verified_at   BIGINT,
    trusted_at    BIGINT,
    trusted_by    TEXT    NOT NULL DEFAULT '',
    claimed       INTEGER NOT NULL DEFAULT 0 CHECK (claimed IN (0, 1)),
    checked_at    BIGINT,
    check_error   TEXT    NOT NULL DEFAULT '',
    records       TEXT    NOT NULL DEFAULT '{}',
    failures      INTEGER NOT NULL DEFAULT 0,
    checks        INTEGER NOT NULL DEFAULT 0,
    next_check_at BIGINT  NOT NULL
);
CREATE UNIQUE INDEX domain_dns_claimed_name ON domain_dns (name) WHERE claimed = 1;
CREATE INDEX domain_dns_due ON domain_dns (next_check_at);
CREATE INDEX domain_dns_account ON domain_dns (account_id);

-- +goose Down
DROP TABLE domain_dns;
