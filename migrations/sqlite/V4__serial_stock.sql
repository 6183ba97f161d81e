-- Snapshots of inFlow's current serial stock (products' inventoryLines). Every snapshot keeps
-- its own rows, so stock on a past snapshot date stays queryable.
CREATE TABLE stock_snapshots (
    snapshot_id  INTEGER PRIMARY KEY,
    company_id   TEXT    NOT NULL,
    run_id       INTEGER NOT NULL,
    started_at   TEXT    NOT NULL,
    completed_at TEXT,                -- NULL until its last page is in: only complete ones count
    products     INTEGER NOT NULL DEFAULT 0,
    serial_lines INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX stock_snapshots_by_company ON stock_snapshots (company_id, snapshot_id);

-- One row per inventory line with a serial: where inFlow says the serial is, and how many.
CREATE TABLE serial_stock (
    snapshot_id       INTEGER NOT NULL,
    company_id        TEXT    NOT NULL,
    product_id        TEXT    NOT NULL,
    serial            TEXT    NOT NULL,
    location_id       TEXT,
    sublocation       TEXT,
    quantity_on_hand  REAL    NOT NULL,  -- 1 when on hand; inFlow can show 0 or negative
    inventory_line_id TEXT,
    observed_at       TEXT    NOT NULL,
    run_id            INTEGER NOT NULL
);
CREATE INDEX serial_stock_by_serial ON serial_stock (serial, company_id, snapshot_id);
CREATE INDEX serial_stock_by_snapshot ON serial_stock (snapshot_id, product_id);

-- The rows of each company's latest complete snapshot, with its time.
CREATE VIEW serial_stock_latest AS
SELECT s.snapshot_id, s.company_id, s.product_id, s.serial, s.location_id, s.sublocation,
       s.quantity_on_hand, t.completed_at AS snapshot_at
FROM serial_stock s
JOIN stock_snapshots t ON t.snapshot_id = s.snapshot_id
WHERE t.snapshot_id = (
    SELECT MAX(l.snapshot_id) FROM stock_snapshots l
    WHERE l.company_id = s.company_id AND l.completed_at IS NOT NULL
);
