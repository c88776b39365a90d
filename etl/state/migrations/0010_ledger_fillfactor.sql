-- A chunk's outcome rewrites its records' ledger rows in one statement (about 500 rows, a few
-- pages of the table each holding many of them). On a full page such an update is not HOT: it
-- also adds an entry to the primary key, which made the upsert about 8 µs of PostgreSQL's CPU
-- per record. Pages left half empty take a whole chunk's new row versions in place (HOT; the
-- old ones are pruned by the next visit), and the upsert costs about 5.6 µs; the table takes
-- up to twice the space. The setting applies to pages written from now on: an existing
-- ledger converges as its rows move, or at once with `VACUUM FULL entity_ledger`.
ALTER TABLE entity_ledger SET (fillfactor = 50);
