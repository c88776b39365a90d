-- A chunk's listed records (`sync_chunk.payload`, about 1 KB per customer) are written once by
-- the producer, read once by the chunk's claim and cleared when the chunk is done. Compressing
-- them (pglz, the default for a large value) was about a third of PostgreSQL's CPU for that
-- round trip; stored out of line uncompressed instead (the space is freed again with the chunk).
ALTER TABLE sync_chunk ALTER COLUMN payload SET STORAGE EXTERNAL;
