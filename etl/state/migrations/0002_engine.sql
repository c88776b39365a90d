-- What the sync engine needs beyond the first schema:
-- * planned-record totals for progress and ETA;
-- * a planning cursor (window start + records already chunked in it) so a producer that dies
--   continues after its last committed chunk instead of planning twice;
-- * chunk payloads for streams whose listing already returns the records (Master Data search),
--   cleared once the chunk is done so personal data does not linger;
-- * enqueued_at, so the maintenance sweep can re-enqueue chunks whose messages were lost;
-- * replay runs point at the run whose rejects they retry; realtime runs hold webhook outcomes.
ALTER TABLE sync_run
    ADD COLUMN records_total   bigint NOT NULL DEFAULT 0 CHECK (records_total >= 0),
    ADD COLUMN planning_cursor timestamptz,
    ADD COLUMN planning_offset int NOT NULL DEFAULT 0 CHECK (planning_offset >= 0),
    ADD COLUMN replay_of       bigint REFERENCES sync_run (id) ON DELETE SET NULL;

ALTER TABLE sync_run DROP CONSTRAINT sync_run_kind_check;
ALTER TABLE sync_run ADD CONSTRAINT sync_run_kind_check
    CHECK (kind IN ('backfill', 'incremental', 'replay', 'realtime'));

ALTER TABLE sync_chunk
    ADD COLUMN payload     jsonb CHECK (payload IS NULL OR jsonb_typeof(payload) = 'array'),
    ADD COLUMN enqueued_at timestamptz;

-- The sweep looks for running chunks whose worker died and pending chunks whose message was lost.
CREATE INDEX sync_chunk_status_updated_idx ON sync_chunk (status, updated_at)
    WHERE status IN ('pending', 'running');
