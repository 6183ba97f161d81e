-- Customers and vendors, so that output shows names instead of GUIDs; the latest stock with
-- product and location names.

-- The company's customers, as far as the orders name them.
CREATE TABLE customers (
    company_id  TEXT NOT NULL,        -- inFlow company GUID
    customer_id TEXT NOT NULL,        -- inFlow's customerId
    name        TEXT,                 -- the customer's name
    is_active   INTEGER,              -- 1 when inFlow shows it as active
    row_version TEXT,                 -- inFlow's `timestamp` of it
    updated_at  TEXT NOT NULL,        -- when audit last stored it
    PRIMARY KEY (company_id, customer_id)
);

-- The company's vendors, as far as the purchase orders name them.
CREATE TABLE vendors (
    company_id  TEXT NOT NULL,        -- inFlow company GUID
    vendor_id   TEXT NOT NULL,        -- inFlow's vendorId
    name        TEXT,                 -- the vendor's name
    is_active   INTEGER,              -- 1 when inFlow shows it as active
    row_version TEXT,                 -- inFlow's `timestamp` of it
    updated_at  TEXT NOT NULL,        -- when audit last stored it
    PRIMARY KEY (company_id, vendor_id)
);

DROP VIEW serial_stock_latest;
-- The rows of each company's latest complete snapshot, with its time, and the product's and
-- location's names (NULL while not fetched).
CREATE VIEW serial_stock_latest AS
SELECT s.snapshot_id, s.company_id, s.product_id, s.serial, s.location_id, s.sublocation,
       s.quantity_on_hand, t.completed_at AS snapshot_at,
       p.name AS product_name, l.name AS location_name
FROM serial_stock s
JOIN stock_snapshots t ON t.snapshot_id = s.snapshot_id
LEFT JOIN products p ON p.company_id = s.company_id AND p.product_id = s.product_id
LEFT JOIN locations l ON l.company_id = s.company_id AND l.location_id = s.location_id
WHERE t.snapshot_id = (
    SELECT MAX(l2.snapshot_id) FROM stock_snapshots l2
    WHERE l2.company_id = s.company_id AND l2.completed_at IS NOT NULL
);

-- Orders stored before V12 name customers and vendors never fetched, and an unchanged order
-- never asks for them: the next run owes one walk of each list an order names.
INSERT INTO sync_state (company_id, stream, walk_id, walk_kind, walk_paging, walk_position, walk_started_at)
SELECT d.company_id, CASE d.doc_type WHEN 'sales_order' THEN 'customers' ELSE 'vendors' END,
       COALESCE((SELECT MAX(r.run_id) FROM ingest_runs r WHERE r.company_id = d.company_id), 0),
       'complete', 'keyset', '', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
FROM documents d
WHERE d.doc_type IN ('sales_order', 'purchase_order') AND d.party_id IS NOT NULL
GROUP BY d.company_id, d.doc_type;
