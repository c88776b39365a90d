-- The catalog sync (issue 13): a `products` scope writing a `catalog_items` ledger stream, and
-- the Synerise catalog each workspace's products go to.
--
-- The scope and stream CHECK constraints are dropped and added again with the new values, by
-- name and IF EXISTS, so this file applies whether or not other migrations ran before it (they
-- may add columns, never these constraints).

ALTER TABLE sync_run DROP CONSTRAINT IF EXISTS sync_run_scope_check;
ALTER TABLE sync_run ADD CONSTRAINT sync_run_scope_check
    CHECK (scope IN ('customers_created', 'customers_updated', 'orders', 'products'));

ALTER TABLE entity_ledger DROP CONSTRAINT IF EXISTS entity_ledger_stream_check;
ALTER TABLE entity_ledger ADD CONSTRAINT entity_ledger_stream_check
    CHECK (stream IN ('profiles', 'transactions', 'catalog_items'));

ALTER TABLE rejected_record DROP CONSTRAINT IF EXISTS rejected_record_stream_check;
ALTER TABLE rejected_record ADD CONSTRAINT rejected_record_stream_check
    CHECK (stream IN ('profiles', 'transactions', 'catalog_items'));

-- The Synerise catalog the products go to, found by name or created once, then remembered here
-- so every worker uses the same one. `workspace` says which Synerise workspace (API host and
-- workspace, never a secret); a later connections feature keys the row per connection instead.
CREATE TABLE synerise_catalog (
    workspace  text NOT NULL,
    name       text NOT NULL,
    catalog_id bigint NOT NULL CHECK (catalog_id > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, name)
);
CREATE TRIGGER synerise_catalog_touch BEFORE UPDATE ON synerise_catalog
    FOR EACH ROW EXECUTE FUNCTION etl_touch_updated_at();
