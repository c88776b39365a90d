-- Connections (issue 12): the state is keyed by the VTEX account and Synerise workspace it
-- belongs to, so a new workspace starts with an empty ledger and two accounts never share a
-- ledger row or a cursor. Runs carry their connection; chunks, rejects and warnings follow
-- their run.
-- Upgrade: every existing row belongs to connection 1, `default`, whose identity is unknown
-- (NULL) until the first engine of the `default` connection claims it (etl.state.connections):
-- an existing single-account deployment keeps its ledger, cursors and runs.
-- (0005-0007 are taken by other changes; the numbers only have to be increasing.)
CREATE TABLE etl_connection (
    id           serial PRIMARY KEY,
    name         text NOT NULL,
    vtex_account text,
    workspace    text,  -- SYNERISE_WORKSPACE_GUID, or a fingerprint of the key: never the key
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (vtex_account, workspace),
    CHECK ((vtex_account IS NULL) = (workspace IS NULL))
);
INSERT INTO etl_connection (id, name) VALUES (1, 'default');
SELECT setval(pg_get_serial_sequence('etl_connection', 'id'), 1);

ALTER TABLE sync_run ADD COLUMN connection_id int REFERENCES etl_connection (id);
UPDATE sync_run SET connection_id = 1;
ALTER TABLE sync_run ALTER COLUMN connection_id SET NOT NULL;
-- The scheduler starts a connection's waiting runs oldest first.
CREATE INDEX sync_run_connection_status_idx ON sync_run (connection_id, status, created_at, id);

ALTER TABLE entity_ledger ADD COLUMN connection_id int NOT NULL DEFAULT 1
    REFERENCES etl_connection (id);
ALTER TABLE entity_ledger ALTER COLUMN connection_id DROP DEFAULT;
ALTER TABLE entity_ledger DROP CONSTRAINT entity_ledger_pkey;
ALTER TABLE entity_ledger ADD PRIMARY KEY (connection_id, stream, record_key);

ALTER TABLE sync_cursor ADD COLUMN connection_id int NOT NULL DEFAULT 1
    REFERENCES etl_connection (id);
ALTER TABLE sync_cursor ALTER COLUMN connection_id DROP DEFAULT;
ALTER TABLE sync_cursor DROP CONSTRAINT sync_cursor_pkey;
ALTER TABLE sync_cursor ADD PRIMARY KEY (connection_id, stream);
