-- +goose Up
-- What each sandbox holds of captured mail, so that a send checks the
-- sandbox's quota without counting its emails. The triggers below keep it in
-- the transaction that adds or deletes captured mail, whichever way the mail
-- goes: deleted by a caller, evicted for the quota, pruned by the retention,
-- or with its sandbox, project or account (foreign-key cascades fire them too).
CREATE TABLE sandbox_usage (
    sandbox_id BIGINT PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    emails     BIGINT NOT NULL CHECK (emails >= 0),
    bytes      BIGINT NOT NULL CHECK (bytes >= 0)
);
INSERT INTO sandbox_usage (sandbox_id, emails, bytes)
    SELECT sandbox_id, count(*), sum(size) FROM emails WHERE sandbox_id IS NOT NULL GROUP BY sandbox_id;

-- +goose StatementBegin
CREATE FUNCTION sandbox_usage_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO sandbox_usage (sandbox_id, emails, bytes) VALUES (NEW.sandbox_id, 1, NEW.size)
            ON CONFLICT (sandbox_id) DO UPDATE
            SET emails = sandbox_usage.emails + 1, bytes = sandbox_usage.bytes + EXCLUDED.bytes;
        RETURN NEW;
    END IF;
    UPDATE sandbox_usage SET emails = emails - 1, bytes = bytes - OLD.size WHERE sandbox_id = OLD.sandbox_id;
    RETURN OLD;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER emails_captured_insert AFTER INSERT ON emails
    FOR EACH ROW WHEN (NEW.sandbox_id IS NOT NULL) EXECUTE FUNCTION sandbox_usage_count();
CREATE TRIGGER emails_captured_delete AFTER DELETE ON emails
    FOR EACH ROW WHEN (OLD.sandbox_id IS NOT NULL) EXECUTE FUNCTION sandbox_usage_count();

-- Captured mail past the retention, oldest first, without reading the mail.
CREATE INDEX emails_captured ON emails (created_at) WHERE sandbox_id IS NOT NULL;

-- +goose Down
DROP INDEX emails_captured;
DROP TRIGGER emails_captured_delete ON emails;
DROP TRIGGER emails_captured_insert ON emails;
DROP FUNCTION sandbox_usage_count();
DROP TABLE sandbox_usage;
