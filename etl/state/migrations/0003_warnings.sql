-- Field warnings and guest profiles (issue 11):
-- * record_warning: a record Synerise accepted without one of its fields (schemas.reasons
--   WarningCode), kept per run for `sync rejects RUN --warnings`. The message names the VTEX
--   field, never its value: no personal data. A record counts once per (field, code) and run,
--   so a webhook record warned again the same day adds nothing.
-- * sync_run.warned_count: the records of the run that carry at least one warning; they are
--   counted as sent, never as rejected.
-- * guest profiles: an orders run upserts a minimal profile for each guest buyer before the
--   transactions (stream `profiles`, key `guest:<identity>`); their outcome has its own counters
--   so the run's read/sent/rejected keep counting orders.
-- * rejected_record.origin_key: the record whose sync produced a rejected one (the order of a
--   refused guest profile), so `sync replay` re-reads the order.
CREATE TABLE record_warning (
    id         bigserial PRIMARY KEY,
    run_id     bigint NOT NULL REFERENCES sync_run (id) ON DELETE CASCADE,
    stream     text NOT NULL,
    record_key text NOT NULL,
    field      text NOT NULL,
    code       text NOT NULL,
    message    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, stream, record_key, field, code)
);
-- `sync rejects RUN --warnings` groups a run's warnings by code.
CREATE INDEX record_warning_run_code_idx ON record_warning (run_id, code);

ALTER TABLE sync_run
    ADD COLUMN warned_count         bigint NOT NULL DEFAULT 0 CHECK (warned_count >= 0),
    ADD COLUMN guest_sent_count     bigint NOT NULL DEFAULT 0 CHECK (guest_sent_count >= 0),
    ADD COLUMN guest_skipped_count  bigint NOT NULL DEFAULT 0 CHECK (guest_skipped_count >= 0),
    ADD COLUMN guest_rejected_count bigint NOT NULL DEFAULT 0 CHECK (guest_rejected_count >= 0);

ALTER TABLE rejected_record ADD COLUMN origin_key text;
