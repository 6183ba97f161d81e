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

-- `audit sql` on Postgres: the server enforces read-only, not a look at the text.
--
-- A role of this database's own (roles are shared by the whole server), NOLOGIN, that may only
-- SELECT the audit tables and views. `audit sql` runs the query in a READ ONLY transaction, with
-- SET LOCAL ROLE to it, inside audit_sql_rows(): a SECURITY DEFINER function owned by the role.
-- Inside such a function Postgres refuses to change `role` or `session_authorization`, so a
-- query cannot undo the switch (a superuser's session could otherwise call
-- set_config('role', ...) and get its rights back in the middle of the statement).

CREATE FUNCTION audit_sql_role_name() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN octet_length('audit_sql_' || current_database()) <= 63
                THEN 'audit_sql_' || current_database()
                ELSE 'audit_sql_' || md5(current_database()) END
$$;

-- Each row of the query as JSON, in column order. Returned rows are materialised by the server
-- (spilling to disk beyond work_mem); the client reads them as a stream.
CREATE FUNCTION audit_sql_rows(query text) RETURNS SETOF json LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    r record;
BEGIN
    FOR r IN EXECUTE query LOOP
        RETURN NEXT row_to_json(r);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION audit_sql_rows(text) FROM PUBLIC;

-- Where the connecting user may create roles (a superuser, or CREATEROLE with the schema's
-- grant rights). Elsewhere nothing here happens, and `audit sql` says so on every run, with the
-- statements an administrator runs once (README, "Security").
DO $$
DECLARE
    reader text := audit_sql_role_name();
    object text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = reader) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', reader);
    END IF;
    FOREACH object IN ARRAY ARRAY[
        'ingest_runs', 'serial_events', 'documents', 'document_changes', 'sync_state', 'locations',
        'products', 'run_warnings', 'event_types', 'ingest_locks', 'stock_snapshots', 'serial_stock',
        'quarantined_documents', 'serial_timeline', 'serial_current', 'serial_stock_latest',
        'serial_events_effective'
    ] LOOP
        EXECUTE format('GRANT SELECT ON %I TO %I', object, reader);
    END LOOP;
    -- Tables and views of later migrations (made by the same user) too.
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO %I', current_schema(), reader);
    IF NOT pg_has_role(current_user, reader, 'MEMBER') THEN
        EXECUTE format('GRANT %I TO %I', reader, current_user);
    END IF;
    -- A new owner needs CREATE on the schema; the role has it only for this statement.
    EXECUTE format('GRANT CREATE ON SCHEMA %I TO %I', current_schema(), reader);
    EXECUTE format('ALTER FUNCTION audit_sql_rows(text) OWNER TO %I', reader);
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM %I', current_schema(), reader);
    EXECUTE format('GRANT EXECUTE ON FUNCTION audit_sql_rows(text) TO %I', current_user);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'audit sql''s read-only role % was not set up (%); audit sql will say so on every run', reader, SQLERRM;
END
$$;
