-- One row per company while an ingest (or rebuild) runs, so that two never run at once.
-- A holder refreshes heartbeat_at; a row whose holder died is taken over (see src/store/lock.rs).
CREATE TABLE ingest_locks (
    company_id   TEXT    PRIMARY KEY,
    holder       TEXT    NOT NULL,   -- for people: command, pid, host, run
    pid          BIGINT NOT NULL,
    host         TEXT    NOT NULL,
    token        TEXT    NOT NULL,   -- unique per acquisition, so only the holder releases it
    acquired_at  TIMESTAMPTZ    NOT NULL,
    heartbeat_at TIMESTAMPTZ    NOT NULL
);
