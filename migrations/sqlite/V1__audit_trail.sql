-- Schema v1 of the serial audit trail (SQLite). Keep in step with ../postgres/V1__audit_trail.sql:
-- same tables, columns and indexes; only the types differ. Times are ISO-8601 UTC text,
-- booleans are 0/1, raw JSON is text.

-- One row per `audit ingest` (or other command that talks to inFlow).
CREATE TABLE ingest_runs (
    run_id            INTEGER PRIMARY KEY,
    company_id        TEXT    NOT NULL,
    command           TEXT    NOT NULL,
    status            TEXT    NOT NULL,             -- running, succeeded, stopped, failed, interrupted
    started_at        TEXT    NOT NULL,
    finished_at       TEXT,
    arguments         TEXT    NOT NULL DEFAULT '{}', -- the options as JSON (never the API key)
    api_version       TEXT,
    requests          INTEGER NOT NULL DEFAULT 0,
    pages             INTEGER NOT NULL DEFAULT 0,
    documents_seen    INTEGER NOT NULL DEFAULT 0,
    documents_changed INTEGER NOT NULL DEFAULT 0,
    events_inserted   INTEGER NOT NULL DEFAULT 0,
    events_retracted  INTEGER NOT NULL DEFAULT 0,
    warnings          INTEGER NOT NULL DEFAULT 0,
    rate_limited      INTEGER NOT NULL DEFAULT 0,   -- 429 answers received
    retries           INTEGER NOT NULL DEFAULT 0,
    error             TEXT
);
CREATE INDEX ingest_runs_by_company ON ingest_runs (company_id, started_at);

-- One row per serial occurrence in a document line. Rows are never deleted: an occurrence that
-- leaves inFlow's current data gets `retracted_at`, so the table is the audit trail itself.
-- run_id has no foreign key so that bulk loads and the benchmark baseline stay simple.
CREATE TABLE serial_events (
    event_id         INTEGER PRIMARY KEY,
    company_id       TEXT    NOT NULL,
    serial           TEXT    NOT NULL,
    product_id       TEXT,
    doc_type         TEXT    NOT NULL,   -- sales_order, purchase_order, stock_adjustment, stock_transfer
    doc_id           TEXT    NOT NULL,
    doc_number       TEXT,
    line_collection  TEXT    NOT NULL,   -- the JSON key the serial came from: lines, pickLines, ...
    line_id          TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,   -- sold, picked, shipped, received, transfer_sent, ...
    occurred_at      TEXT,               -- NULL when the document gives no date
    location_id      TEXT,
    sublocation      TEXT,
    quantity_delta   INTEGER NOT NULL CHECK (quantity_delta IN (-1, 0, 1)),
    doc_status       TEXT,
    observed_at      TEXT    NOT NULL,
    run_id           INTEGER NOT NULL,
    retracted_at     TEXT,
    retracted_run_id INTEGER
);
CREATE UNIQUE INDEX serial_events_current_key ON serial_events
    (company_id, doc_type, doc_id, line_collection, line_id, serial, event_type)
    WHERE retracted_at IS NULL;
CREATE INDEX serial_events_by_serial ON serial_events (serial, company_id, occurred_at);
CREATE INDEX serial_events_by_document ON serial_events (company_id, doc_type, doc_id);

-- The latest fetched version of every document, with its raw JSON.
CREATE TABLE documents (
    company_id       TEXT    NOT NULL,
    doc_type         TEXT    NOT NULL,
    doc_id           TEXT    NOT NULL,
    doc_number       TEXT,
    doc_date         TEXT,               -- orderDate, date or transferDate
    doc_status       TEXT,
    party_id         TEXT,               -- customerId of a sales order, vendorId of a purchase order
    row_version      TEXT,               -- the header `timestamp`
    lines_version    TEXT,               -- digest of every line's id and `timestamp`
    is_cancelled     INTEGER NOT NULL DEFAULT 0,
    deleted_at       TEXT,               -- set when a complete walk no longer returns it
    deleted_run_id   INTEGER,
    raw              TEXT    NOT NULL,
    first_seen_at    TEXT    NOT NULL,
    first_run_id     INTEGER NOT NULL,
    changed_at       TEXT    NOT NULL,   -- when this version was first fetched
    changed_run_id   INTEGER NOT NULL,
    last_seen_at     TEXT    NOT NULL,
    last_seen_run_id INTEGER NOT NULL,
    seen_walk_id     INTEGER,            -- the walk that last returned it
    PRIMARY KEY (company_id, doc_type, doc_id)
);
CREATE INDEX documents_by_number ON documents (company_id, doc_type, doc_number);
-- What a finished walk did not see, read without touching the (large) rows.
CREATE INDEX documents_by_walk ON documents (company_id, doc_type, seen_walk_id, deleted_at, doc_date, doc_id);

-- What changed in a known document, run by run (first sightings are in `documents`).
CREATE TABLE document_changes (
    change_id         INTEGER PRIMARY KEY,
    company_id        TEXT    NOT NULL,
    doc_type          TEXT    NOT NULL,
    doc_id            TEXT    NOT NULL,
    doc_number        TEXT,
    run_id            INTEGER NOT NULL,
    observed_at       TEXT    NOT NULL,
    change            TEXT    NOT NULL,  -- changed, cancelled, uncancelled, deleted, reappeared
    old_row_version   TEXT,
    new_row_version   TEXT,
    old_lines_version TEXT,
    new_lines_version TEXT,
    events_inserted   INTEGER NOT NULL DEFAULT 0,
    events_retracted  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX document_changes_by_document ON document_changes (company_id, doc_type, doc_id);
CREATE INDEX document_changes_by_run ON document_changes (run_id);

-- Per company and stream: the position of an unfinished walk and what the last ones achieved.
CREATE TABLE sync_state (
    company_id           TEXT    NOT NULL,
    stream               TEXT    NOT NULL,   -- sales-orders, purchase-orders, ...
    since                TEXT,               -- lower date bound (YYYY-MM-DD) kept from --since
    walk_id              INTEGER,            -- run that started the unfinished walk; NULL if none
    walk_kind            TEXT,               -- complete or window
    walk_from            TEXT,               -- date bound of that walk
    walk_paging          TEXT,               -- keyset or skip
    walk_position        TEXT,               -- last id returned (keyset) or rows consumed (skip)
    walk_started_at      TEXT,
    last_complete_at     TEXT,
    last_complete_run_id INTEGER,
    last_window_at       TEXT,
    last_window_run_id   INTEGER,
    PRIMARY KEY (company_id, stream)
);

-- Reference data, so that output can show names.
CREATE TABLE locations (
    company_id  TEXT NOT NULL,
    location_id TEXT NOT NULL,
    name        TEXT,
    is_active   INTEGER,
    row_version TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (company_id, location_id)
);

CREATE TABLE products (
    company_id    TEXT NOT NULL,
    product_id    TEXT NOT NULL,
    name          TEXT,
    sku           TEXT,
    track_serials INTEGER,
    is_active     INTEGER,
    item_type     TEXT,
    row_version   TEXT,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (company_id, product_id)
);

-- Odd data met during a run: empty serials, repeated serials, counts that differ from quantities.
CREATE TABLE run_warnings (
    warning_id      INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL,
    company_id      TEXT    NOT NULL,
    doc_type        TEXT,
    doc_id          TEXT,
    doc_number      TEXT,
    line_collection TEXT,
    line_id         TEXT,
    kind            TEXT    NOT NULL,
    detail          TEXT    NOT NULL
);
CREATE INDEX run_warnings_by_run ON run_warnings (run_id);
