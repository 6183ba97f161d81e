-- The event vocabulary as a table, and the views users query. The same text runs on SQLite
-- (../sqlite/V2__event_types_and_views.sql); a test keeps the two identical.

-- What each event_type means: its stock effect and the order of a document's steps
-- (ordered or sold before picked before shipped; sent before received).
CREATE TABLE event_types (
    event_type     TEXT    PRIMARY KEY,
    step           INTEGER NOT NULL,
    quantity_delta INTEGER NOT NULL,
    doc_type       TEXT    NOT NULL,
    description    TEXT    NOT NULL
);
INSERT INTO event_types (event_type, step, quantity_delta, doc_type, description) VALUES
    ('quoted',             0,  0, 'sales_order',      'on a line of a sales quote'),
    ('ordered',            1,  0, 'purchase_order',   'on a purchase order line'),
    ('sold',               1,  0, 'sales_order',      'on a sales order line'),
    ('transfer_requested', 1,  0, 'stock_transfer',   'on an open transfer, still at the source'),
    ('received',           2,  1, 'purchase_order',   'received into stock from the vendor'),
    ('adjusted_in',        2,  1, 'stock_adjustment', 'added to stock by an adjustment'),
    ('adjusted_out',       2, -1, 'stock_adjustment', 'removed from stock by an adjustment'),
    ('picked',             3, -1, 'sales_order',      'picked for a sales order: leaves on-hand stock'),
    ('transfer_sent',      3, -1, 'stock_transfer',   'sent out of the source location'),
    ('packed',             4,  0, 'sales_order',      'packed in a container not shipped yet'),
    ('shipped',            5,  0, 'sales_order',      'shipped to the customer'),
    ('transfer_received',  5,  1, 'stock_transfer',   'received into the destination location'),
    ('customer_return',    6,  0, 'sales_order',      'returned by the customer (a negative sales line)'),
    ('vendor_return',      6,  0, 'purchase_order',   'returned to the vendor (a negative purchase line)'),
    ('restocked',          7,  1, 'sales_order',      'put back into stock after a customer return'),
    ('unstocked',          7, -1, 'purchase_order',   'taken out of stock to go back to the vendor');

-- Current (not retracted) events with product and location names, in timeline order:
-- ORDER BY company_id, serial, occurred_at, step, event_id.
CREATE VIEW serial_timeline AS
SELECT e.event_id, e.company_id, e.serial, e.product_id,
       p.name AS product_name, p.sku AS product_sku,
       e.doc_type, e.doc_id, e.doc_number, e.line_collection, e.line_id,
       e.event_type, t.step, e.occurred_at,
       e.location_id, l.name AS location_name, e.sublocation,
       e.quantity_delta, e.doc_status, e.observed_at, e.run_id
FROM serial_events e
LEFT JOIN event_types t ON t.event_type = e.event_type
LEFT JOIN products p ON p.company_id = e.company_id AND p.product_id = e.product_id
LEFT JOIN locations l ON l.company_id = e.company_id AND l.location_id = e.location_id
WHERE e.retracted_at IS NULL;

-- Per company, product and serial: where it is per its last stock movement, since when, and by
-- which document. status is in_stock, in_transit, with_customer, returned_to_vendor,
-- adjusted_out, or never_stocked (documents mention it, but nothing moved it). An undated
-- movement counts as the latest, as in `audit timeline`.
CREATE VIEW serial_current AS
WITH ranked AS (
    SELECT e.company_id, e.product_id, e.serial, e.event_type, e.quantity_delta, e.occurred_at,
           e.location_id, e.sublocation, e.doc_type, e.doc_id, e.doc_number,
           ROW_NUMBER() OVER (
               PARTITION BY e.company_id, e.product_id, e.serial
               ORDER BY CASE WHEN e.quantity_delta <> 0 THEN 0 ELSE 1 END,
                        CASE WHEN e.occurred_at IS NULL THEN 0 ELSE 1 END,
                        e.occurred_at DESC, t.step DESC, e.event_id DESC
           ) AS rank_in_serial
    FROM serial_events e
    LEFT JOIN event_types t ON t.event_type = e.event_type
    WHERE e.retracted_at IS NULL
)
SELECT r.company_id, r.product_id, p.name AS product_name, p.sku AS product_sku, r.serial,
       CASE
           WHEN r.quantity_delta > 0 THEN 'in_stock'
           WHEN r.quantity_delta = 0 THEN 'never_stocked'
           WHEN r.event_type = 'transfer_sent' THEN 'in_transit'
           WHEN r.event_type = 'picked' THEN 'with_customer'
           WHEN r.event_type = 'unstocked' THEN 'returned_to_vendor'
           ELSE 'adjusted_out'
       END AS status,
       r.location_id, l.name AS location_name, r.sublocation,
       r.occurred_at AS since, r.event_type AS last_event,
       r.doc_type, r.doc_id, r.doc_number
FROM ranked r
LEFT JOIN products p ON p.company_id = r.company_id AND p.product_id = r.product_id
LEFT JOIN locations l ON l.company_id = r.company_id AND l.location_id = r.location_id
WHERE r.rank_in_serial = 1;
