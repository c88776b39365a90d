-- Sync state: runs, their chunks, rejected records, cursors, the entity ledger
-- (docs/architecture.md "State store"), plus the selftest table used by the foundation demo.

-- Keeps updated_at honest whoever writes the row.
CREATE FUNCTION etl_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TABLE sync_run (
    id             bigserial PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('backfill', 'incremental', 'replay')),
    scope          text NOT NULL
                   CHECK (scope IN ('customers_created', 'customers_updated', 'orders')),
    window_from    timestamptz NOT NULL,
    window_to      timestamptz NOT NULL,
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'planning', 'running', 'paused', 'done', 'failed',
                                     'cancelled')),
    dry_run        boolean NOT NULL DEFAULT false,
    full_resync    boolean NOT NULL DEFAULT false,
    read_count     bigint NOT NULL DEFAULT 0 CHECK (read_count >= 0),
    sent_count     bigint NOT NULL DEFAULT 0 CHECK (sent_count >= 0),
    skipped_count  bigint NOT NULL DEFAULT 0 CHECK (skipped_count >= 0),
    rejected_count bigint NOT NULL DEFAULT 0 CHECK (rejected_count >= 0),
    failed_count   bigint NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    would_create   bigint NOT NULL DEFAULT 0 CHECK (would_create >= 0),
    would_update   bigint NOT NULL DEFAULT 0 CHECK (would_update >= 0),
    chunks_total   int NOT NULL DEFAULT 0 CHECK (chunks_total >= 0),
    chunks_done    int NOT NULL DEFAULT 0 CHECK (chunks_done >= 0),
    chunks_failed  int NOT NULL DEFAULT 0 CHECK (chunks_failed >= 0),
    planning_done  boolean NOT NULL DEFAULT false,
    config         jsonb NOT NULL DEFAULT '{}'::jsonb,
    error          text,
    slot_token     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (window_from <= window_to)
);
-- The sweep starts waiting runs oldest first; the CLI lists by status.
CREATE INDEX sync_run_status_created_idx ON sync_run (status, created_at, id);
CREATE TRIGGER sync_run_touch BEFORE UPDATE ON sync_run
    FOR EACH ROW EXECUTE FUNCTION etl_touch_updated_at();

CREATE TABLE sync_chunk (
    id         bigserial PRIMARY KEY,
    run_id     bigint NOT NULL REFERENCES sync_run (id) ON DELETE CASCADE,
    seq        int NOT NULL CHECK (seq >= 1),
    keys       jsonb NOT NULL CHECK (jsonb_typeof(keys) = 'array'),
    status     text NOT NULL DEFAULT 'pending'
               CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts   int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error      text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, seq)
);
-- Resume and the sweep look for a run's unfinished chunks.
CREATE INDEX sync_chunk_run_status_idx ON sync_chunk (run_id, status);
CREATE TRIGGER sync_chunk_touch BEFORE UPDATE ON sync_chunk
    FOR EACH ROW EXECUTE FUNCTION etl_touch_updated_at();

CREATE TABLE rejected_record (
    id          bigserial PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES sync_run (id) ON DELETE CASCADE,
    stream      text NOT NULL CHECK (stream IN ('profiles', 'transactions')),
    record_key  text NOT NULL,
    reason      text NOT NULL,
    message     text,
    payload     jsonb,
    attempts    int NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    resolved_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, stream, record_key)
);
-- `sync rejects RUN --reason X`.
CREATE INDEX rejected_record_run_reason_idx ON rejected_record (run_id, reason);

CREATE TABLE sync_cursor (
    stream       text PRIMARY KEY,
    cursor_value timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER sync_cursor_touch BEFORE UPDATE ON sync_cursor
    FOR EACH ROW EXECUTE FUNCTION etl_touch_updated_at();

CREATE TABLE entity_ledger (
    stream       text NOT NULL CHECK (stream IN ('profiles', 'transactions')),
    record_key   text NOT NULL,
    content_hash text NOT NULL,
    synced_at    timestamptz NOT NULL DEFAULT now(),
    run_id       bigint,  -- no FK: the ledger outlives pruned runs
    PRIMARY KEY (stream, record_key)
);

-- One row per `etl.selftest` task: proves broker -> worker -> PostgreSQL works end to end.
CREATE TABLE selftest (
    token  text PRIMARY KEY,
    worker text NOT NULL,
    at     timestamptz NOT NULL DEFAULT now()
);
