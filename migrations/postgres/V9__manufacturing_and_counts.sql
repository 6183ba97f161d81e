-- Manufacturing orders and stock counts: their events, genealogy and statuses. Keep in step with
-- ../sqlite/V9__manufacturing_and_counts.sql (the table's types differ, the rest is the same).

-- One row per component serial a manufacturing order built into a finished serial, derived
-- from the order's pick lines, pick matchings, lines and put lines. An order's rows are replaced
-- whenever it is derived again, and removed when it is cancelled or deleted: the history is in
-- `serial_events` and `document_changes`.
CREATE TABLE genealogy_links (
    company_id           TEXT    NOT NULL,
    doc_type             TEXT    NOT NULL,   -- manufacturing_order
    doc_id               TEXT    NOT NULL,
    doc_number           TEXT,
    order_status         TEXT,
    component_serial     TEXT    NOT NULL,
    component_product_id TEXT,
    finished_serial      TEXT    NOT NULL,
    finished_product_id  TEXT,
    built_at             TIMESTAMPTZ,        -- when the unit was put away; NULL until completed
    matched_to           TEXT    NOT NULL,   -- unit, line or order: how closely the link is known
    observed_at          TIMESTAMPTZ NOT NULL,
    run_id               BIGINT  NOT NULL
);
CREATE INDEX genealogy_links_by_document ON genealogy_links (company_id, doc_type, doc_id);
-- Serials have no length limit, a btree entry does (see V6): looked up by hash.
CREATE INDEX genealogy_links_by_component ON genealogy_links USING hash (component_serial);
CREATE INDEX genealogy_links_by_finished ON genealogy_links USING hash (finished_serial);

-- The same text on both engines from here on; a test keeps the two identical.

-- The new events: what manufacturing orders and stock counts record, and the adjustments a
-- completed count made (their stock effect is on the count's own events).
INSERT INTO event_types (event_type, step, quantity_delta, doc_type, description) VALUES
    ('build_planned',      1,  0, 'manufacturing_order', 'on a line of a manufacturing order: a unit to build'),
    ('consumed',           3, -1, 'manufacturing_order', 'picked as a component of a manufacturing order: leaves stock'),
    ('production_pending', 4,  0, 'manufacturing_order', 'on a put-away line of an order not completed yet'),
    ('produced',           5,  1, 'manufacturing_order', 'put away as a finished unit of a completed manufacturing order'),
    ('counted',            1,  0, 'stock_count',         'counted on a stock count sheet'),
    ('count_missing',      2, -1, 'stock_count',         'expected by a completed stock count but not counted: leaves stock'),
    ('count_found',        2,  1, 'stock_count',         'counted by a completed stock count but not expected: enters stock'),
    ('adjusted_by_count',  2,  0, 'stock_adjustment',    'on an adjustment a completed stock count made; the count''s events move the stock');

-- Genealogy with names: one row per component serial built into a finished serial.
CREATE VIEW serial_genealogy AS
SELECT g.company_id,
       g.component_serial, g.component_product_id,
       cp.name AS component_product_name, cp.sku AS component_product_sku,
       g.doc_type, g.doc_id, g.doc_number, g.order_status,
       g.finished_serial, g.finished_product_id,
       fp.name AS finished_product_name, fp.sku AS finished_product_sku,
       g.built_at, g.matched_to
FROM genealogy_links g
LEFT JOIN products cp ON cp.company_id = g.company_id AND cp.product_id = g.component_product_id
LEFT JOIN products fp ON fp.company_id = g.company_id AND fp.product_id = g.finished_product_id;

-- serial_current as in V5, with two more ways out of stock: `consumed` (built into another
-- product by a manufacturing order) and `missing` (not found by a completed stock count).
CREATE OR REPLACE VIEW serial_current AS
WITH ranked AS (
    SELECT e.company_id, e.product_id, e.serial, e.event_type, e.quantity_delta, e.occurred_at,
           e.location_id, e.sublocation, e.doc_type, e.doc_id, e.doc_number,
           ROW_NUMBER() OVER (
               PARTITION BY e.company_id, e.product_id, e.serial
               ORDER BY CASE WHEN e.quantity_delta <> 0 THEN 0 ELSE 1 END,
                        CASE WHEN e.effective_at IS NULL THEN 0 ELSE 1 END,
                        e.effective_at DESC, e.step DESC, e.event_id DESC
           ) AS rank_in_serial
    FROM serial_events_effective e
)
SELECT r.company_id, r.product_id, p.name AS product_name, p.sku AS product_sku, r.serial,
       CASE
           WHEN r.quantity_delta > 0 THEN 'in_stock'
           WHEN r.quantity_delta = 0 THEN 'never_stocked'
           WHEN r.event_type = 'transfer_sent' THEN 'in_transit'
           WHEN r.event_type = 'picked' THEN 'with_customer'
           WHEN r.event_type = 'unstocked' THEN 'returned_to_vendor'
           WHEN r.event_type = 'consumed' THEN 'consumed'
           WHEN r.event_type = 'count_missing' THEN 'missing'
           ELSE 'adjusted_out'
       END AS status,
       r.location_id, l.name AS location_name, r.sublocation,
       r.occurred_at AS since, r.event_type AS last_event,
       r.doc_type, r.doc_id, r.doc_number
FROM ranked r
LEFT JOIN products p ON p.company_id = r.company_id AND p.product_id = r.product_id
LEFT JOIN locations l ON l.company_id = r.company_id AND l.location_id = r.location_id
WHERE r.rank_in_serial = 1;
