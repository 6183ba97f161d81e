-- One ordering of a serial's events for every consumer. The same text runs on Postgres
-- (../postgres/V5__effective_event_times.sql); a test keeps the two identical.

-- Current events with the time they are ordered by. An undated event (a receipt without a
-- receive date, say) takes the latest date of the earlier steps of its own document for the same
-- serial, as `audit timeline` places it; with no dated earlier step, effective_at is NULL and
-- the event counts as the latest.
CREATE VIEW serial_events_effective AS
SELECT e.event_id, e.company_id, e.serial, e.product_id, e.doc_type, e.doc_id, e.doc_number,
       e.line_collection, e.line_id, e.event_type, t.step, e.occurred_at,
       COALESCE(e.occurred_at, (
           SELECT max(o.occurred_at)
           FROM serial_events o
           JOIN event_types ot ON ot.event_type = o.event_type
           WHERE o.company_id = e.company_id AND o.doc_type = e.doc_type AND o.doc_id = e.doc_id
             AND o.serial = e.serial AND o.retracted_at IS NULL AND ot.step < t.step
             AND (o.product_id = e.product_id OR (o.product_id IS NULL AND e.product_id IS NULL))
       )) AS effective_at,
       e.location_id, e.sublocation, e.quantity_delta, e.doc_status, e.observed_at, e.run_id
FROM serial_events e
LEFT JOIN event_types t ON t.event_type = e.event_type
WHERE e.retracted_at IS NULL;

-- serial_current as in V2, its last movement chosen by effective_at: the header of
-- `audit timeline` and the last row of its table now always agree. (Same columns: Postgres
-- replaces it in place, keeping views users built on it; SQLite drops and creates it.)
DROP VIEW serial_current;
CREATE VIEW serial_current AS
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
           ELSE 'adjusted_out'
       END AS status,
       r.location_id, l.name AS location_name, r.sublocation,
       r.occurred_at AS since, r.event_type AS last_event,
       r.doc_type, r.doc_id, r.doc_number
FROM ranked r
LEFT JOIN products p ON p.company_id = r.company_id AND p.product_id = r.product_id
LEFT JOIN locations l ON l.company_id = r.company_id AND l.location_id = r.location_id
WHERE r.rank_in_serial = 1;
