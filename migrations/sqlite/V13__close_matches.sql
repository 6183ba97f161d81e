-- Close matches for mistyped serials ("did you mean"), found without reading serial_events:
-- every serial string once per company, with its normalised form (upper case, letters and
-- digits only, at most 100 characters) and that form reversed, each indexed. A typo leaves the
-- first or the last half of a serial intact, so the serials sharing either half are the
-- candidates; audit measures the edit distance of those few. audit adds a row whenever it
-- records an event of a new serial, and fills the table from serial_events when this migration
-- is applied. Rows stay when events are retracted (`audit timeline --all` still finds them).
CREATE TABLE serial_keys (
    company_id TEXT NOT NULL, -- the inFlow company
    serial     TEXT NOT NULL, -- exactly as inFlow stores it
    norm       TEXT NOT NULL, -- upper case, letters and digits only: SN-000319 is SN000319
    rnorm      TEXT NOT NULL, -- norm reversed, to find the serials ending alike
    PRIMARY KEY (company_id, serial)
);
CREATE INDEX serial_keys_by_norm ON serial_keys (norm);
CREATE INDEX serial_keys_by_rnorm ON serial_keys (rnorm);
