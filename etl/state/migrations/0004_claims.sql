-- Claims: which worker process holds a chunk, or plans a run, and until when (PostgreSQL time).
-- Each worker process extends its live claims with one heartbeat every few seconds
-- (SYNC_CLAIM_TTL / 3); a claim that is not extended expires, and upkeep puts its work back
-- once (compare-and-set), so a dead, frozen or cut-off holder is replaced within seconds while
-- other workers keep the run itself alive. The holder's late outcome changes nothing: a chunk
-- completes only for the attempt and holder that claimed it, planning writes only for the
-- holder of the planning claim.
-- (0003 is taken by another change; the numbers only have to be increasing.)
ALTER TABLE sync_chunk
    ADD COLUMN claimed_by       text,
    ADD COLUMN claim_expires_at timestamptz;

ALTER TABLE sync_run
    ADD COLUMN planning_claimed_by       text,
    ADD COLUMN planning_claim_expires_at timestamptz;

-- Upkeep looks for running chunks whose claim expired.
CREATE INDEX sync_chunk_claim_expiry_idx ON sync_chunk (claim_expires_at)
    WHERE status = 'running';

-- Listed records a chunk carries are written once and read once, never queried: kept as the
-- text they arrived as (json), not parsed into jsonb and printed back, which cost PostgreSQL
-- about 8 µs of CPU per record (docs/benchmarks.md, "Per-chunk cost").
ALTER TABLE sync_chunk DROP CONSTRAINT sync_chunk_payload_check;
ALTER TABLE sync_chunk ALTER COLUMN payload TYPE json USING payload::json;
ALTER TABLE sync_chunk ADD CONSTRAINT sync_chunk_payload_check
    CHECK (payload IS NULL OR json_typeof(payload) = 'array');
