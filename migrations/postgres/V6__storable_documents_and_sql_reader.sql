-- Every document inFlow can return is kept (SQLite: ../sqlite/V6__storable_documents_and_sql_reader.sql).

-- A `\u0000` or a lone UTF-16 surrogate in a document is kept as the text of its escape in
-- `raw` and in the events (the same on both engines, see src/mapping/storable.rs); the exact
-- JSON as inFlow sent it is then kept here (jsonb cannot hold it). NULL when `raw` is the
-- document as sent.
ALTER TABLE documents ADD COLUMN raw_text TEXT;

-- Documents that could not be stored as events (unreadable JSON, an id too long to index, a
-- value the database refused), one row per document, with the exact JSON as sent. A row goes
-- when a later version of the document is stored.
CREATE TABLE quarantined_documents (
    company_id    TEXT    NOT NULL,
    doc_type      TEXT    NOT NULL,
    doc_key       TEXT    NOT NULL,   -- SHA-256 of the id (of the JSON when it has none): ids can be too long to index
    doc_id        TEXT,
    reason        TEXT    NOT NULL,
    raw           TEXT    NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    first_run_id  BIGINT  NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    last_run_id   BIGINT  NOT NULL,
    PRIMARY KEY (company_id, doc_type, doc_key)
);

-- Serials have no length limit, but a btree entry does (about 2.7 KB): a long serial failed its
-- whole page. Lookups by serial use a hash index, which stores only the value's hash (and
-- compares the row's full value); uniqueness of current events uses the serial's md5 in place
-- of the serial. SQLite indexes keys of any length and keeps its indexes as they were.
DROP INDEX serial_events_current_key;
CREATE UNIQUE INDEX serial_events_current_key ON serial_events
    (company_id, doc_type, doc_id, line_collection, line_id, md5(serial), event_type)
    WHERE retracted_at IS NULL;
DROP INDEX serial_events_by_serial;
CREATE INDEX serial_events_by_serial ON serial_events USING hash (serial);
DROP INDEX serial_stock_by_serial;
CREATE INDEX serial_stock_by_serial ON serial_stock USING hash (serial);
