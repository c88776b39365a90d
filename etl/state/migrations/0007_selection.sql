-- Selection runs: `sync start orders --ids ...` / `sync start customers --ids/--emails ...`.
-- Like a replay, a selection run is planned whole when it is created: its chunks hold the
-- selected keys (the run's record of what was asked), so no producer ever runs for it.
-- (0005 and 0006 are taken by other changes; the numbers only have to be increasing.)
ALTER TABLE sync_run DROP CONSTRAINT sync_run_kind_check;
ALTER TABLE sync_run ADD CONSTRAINT sync_run_kind_check
    CHECK (kind IN ('backfill', 'incremental', 'replay', 'realtime', 'selection'));
