-- +goose Up
-- An email keeps the Message-ID its sender gave it (an SMTP submission's
-- own), which every copy carries, so that the logs show the one sent.
ALTER TABLE emails ADD COLUMN message_id_header TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE emails DROP COLUMN message_id_header;
