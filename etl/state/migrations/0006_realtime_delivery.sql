-- The realtime inbox (issue 16, etl.sync.inbox): webhook notifications wait in a Redis stream
-- per scope and drains process them in batches.
-- * realtime_delivery: the inbox entries whose outcome a drain recorded, written in the batch's
--   own transaction. Redis acknowledges an entry only after that transaction; if the drain dies
--   in between, the entry is delivered again and the row says it is done (acknowledged with no
--   second effect and no second count). A row is deleted once its entry is acknowledged, so the
--   table holds only the entries in that gap (and the leftovers of a crash, purged after a day).
CREATE TABLE realtime_delivery (
    inbox    text NOT NULL,
    entry_id text NOT NULL,
    done_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (inbox, entry_id)
);
