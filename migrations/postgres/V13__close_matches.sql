-- Close matches for mistyped serials ("did you mean"), found without reading serial_events:
-- every serial string once per company, with its normalised form (upper case, letters and
-- digits only, at most 100 characters) and that form reversed, each indexed. A typo leaves the
-- first or the last half of a serial intact, so the serials sharing either half are the
-- candidates; audit measures the edit distance of those few. audit adds a row whenever it
-- records an event of a new serial, and fills the table from serial_events when this migration
-- is applied. Rows stay when events are retracted (`audit timeline --all` still finds them).
-- "C" collation: the prefix ranges compare bytes, and use the indexes.
CREATE TABLE serial_keys (
    company_id TEXT NOT NULL,
    serial     TEXT NOT NULL,
    norm       TEXT COLLATE "C" NOT NULL,
    rnorm      TEXT COLLATE "C" NOT NULL
);
-- md5: an index entry has a size limit, a serial has none (as serial_events' key, V6).
CREATE UNIQUE INDEX serial_keys_key ON serial_keys (company_id, md5(serial));
CREATE INDEX serial_keys_by_norm ON serial_keys (norm);
CREATE INDEX serial_keys_by_rnorm ON serial_keys (rnorm);

COMMENT ON TABLE serial_keys IS 'Every serial once per company with its normalised forms, for close matches of mistyped serials';
COMMENT ON COLUMN serial_keys.company_id IS 'The inFlow company';
COMMENT ON COLUMN serial_keys.serial IS 'The serial exactly as inFlow stores it';
COMMENT ON COLUMN serial_keys.norm IS 'Upper case, letters and digits only, at most 100 characters: SN-000319 is SN000319';
COMMENT ON COLUMN serial_keys.rnorm IS 'norm reversed, to find the serials ending alike';
