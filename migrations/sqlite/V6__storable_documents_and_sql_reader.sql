-- Every document inFlow can return is kept (Postgres: ../postgres/V6__storable_documents_and_sql_reader.sql).

-- A `\u0000` or a lone UTF-16 surrogate in a document is kept as the text of its escape in
-- `raw` and in the events (the same on both engines, see src/mapping/storable.rs); the exact
-- JSON as inFlow sent it is then kept here. NULL when `raw` is the document as sent.
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
    first_seen_at TEXT    NOT NULL,
    first_run_id  INTEGER NOT NULL,
    last_seen_at  TEXT    NOT NULL,
    last_run_id   INTEGER NOT NULL,
    PRIMARY KEY (company_id, doc_type, doc_key)
);
