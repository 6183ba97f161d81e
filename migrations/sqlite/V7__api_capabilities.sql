-- What audit learnt about each company's inFlow API, by `audit doctor` or by an ingest that had
-- to adapt: one row per answer, the latest kept. The ingest reads it to choose how it walks
-- (`paging:<stream>`: keyset, keyset-unsorted or skip; `list_count`: what X-listCount counts;
-- `rate_headers`: whether the rate headers count up or down).
CREATE TABLE api_capabilities (
    company_id  TEXT    NOT NULL,
    name        TEXT    NOT NULL,   -- credentials, paging:sales-orders, list_count, ...
    value       TEXT    NOT NULL,   -- the answer, short: ok, keyset, total, remaining, missing, ...
    detail      TEXT,               -- what was seen, for people
    api_version TEXT,               -- the version sent in the Accept header
    source      TEXT    NOT NULL,   -- doctor or ingest
    checked_at  TEXT    NOT NULL,
    PRIMARY KEY (company_id, name)
);

-- What the pass of an unfinished walk has seen, so that a resumed walk can still prove its end
-- and its completeness (see src/inflow/walk.rs).
ALTER TABLE sync_state ADD COLUMN walk_seen INTEGER;        -- documents returned in the pass
ALTER TABLE sync_state ADD COLUMN walk_list_count INTEGER;  -- X-listCount of the pass; -1 once it moved
ALTER TABLE sync_state ADD COLUMN walk_unproven TEXT;       -- why the pass cannot prove completeness
