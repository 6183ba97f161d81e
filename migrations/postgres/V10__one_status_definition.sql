-- The SQLite and Postgres versions differ in how a view is replaced (and a comment on Postgres).
-- One definition of where a serial stands. Before this, serial_current, `audit lookup` and
-- `audit timeline` each had their own copy of the rule, and they disagreed: a serial picked
-- and not shipped was `with_customer` in the view and "not shipped yet" in the timeline. The
-- rule is now data: the status each event type leaves a serial in. Every reader takes it from
-- here. Picked and not yet shipped is a status of its own, `picked`.
ALTER TABLE event_types ADD COLUMN status_after TEXT;
COMMENT ON COLUMN event_types.status_after IS
    'the status a serial has when this is its latest event with one (NULL: the event does not change where it is)';

UPDATE event_types SET status_after = CASE event_type
    WHEN 'received'          THEN 'in_stock'
    WHEN 'adjusted_in'       THEN 'in_stock'
    WHEN 'transfer_received' THEN 'in_stock'
    WHEN 'restocked'         THEN 'in_stock'
    WHEN 'produced'          THEN 'in_stock'
    WHEN 'count_found'       THEN 'in_stock'
    WHEN 'transfer_sent'     THEN 'in_transit'
    WHEN 'picked'            THEN 'picked'
    WHEN 'shipped'           THEN 'with_customer'
    WHEN 'unstocked'         THEN 'returned_to_vendor'
    WHEN 'adjusted_out'      THEN 'adjusted_out'
    WHEN 'consumed'          THEN 'consumed'
    WHEN 'count_missing'     THEN 'missing'
END;

-- serial_current: the status of a serial is the status_after of its latest current event that
-- has one (its latest event when none has: never_stocked); last_event is its latest event of
-- any kind. `audit timeline` reads the same column (the store's event rows carry it).
CREATE OR REPLACE VIEW serial_current AS
WITH ranked AS (
    SELECT e.company_id, e.product_id, e.serial, e.event_type, t.status_after, e.occurred_at,
           e.location_id, e.sublocation, e.doc_type, e.doc_id, e.doc_number,
           ROW_NUMBER() OVER (
               PARTITION BY e.company_id, e.product_id, e.serial
               ORDER BY CASE WHEN t.status_after IS NOT NULL THEN 0 ELSE 1 END,
                        CASE WHEN e.effective_at IS NULL THEN 0 ELSE 1 END,
                        e.effective_at DESC, e.step DESC, e.event_id DESC
           ) AS rank_in_serial,
           FIRST_VALUE(e.event_type) OVER (
               PARTITION BY e.company_id, e.product_id, e.serial
               ORDER BY CASE WHEN e.effective_at IS NULL THEN 0 ELSE 1 END,
                        e.effective_at DESC, e.step DESC, e.event_id DESC
           ) AS latest_event
    FROM serial_events_effective e
    LEFT JOIN event_types t ON t.event_type = e.event_type
)
SELECT r.company_id, r.product_id, p.name AS product_name, p.sku AS product_sku, r.serial,
       COALESCE(r.status_after, 'never_stocked') AS status,
       -- A serial never stocked has no place, nor a date it has been there since.
       CASE WHEN r.status_after IS NOT NULL THEN r.location_id END AS location_id,
       CASE WHEN r.status_after IS NOT NULL THEN l.name END AS location_name,
       CASE WHEN r.status_after IS NOT NULL THEN r.sublocation END AS sublocation,
       CASE WHEN r.status_after IS NOT NULL THEN r.occurred_at END AS since,
       r.latest_event AS last_event,
       r.doc_type, r.doc_id, r.doc_number
FROM ranked r
LEFT JOIN products p ON p.company_id = r.company_id AND p.product_id = r.product_id
LEFT JOIN locations l ON l.company_id = r.company_id AND l.location_id = r.location_id
WHERE r.rank_in_serial = 1;
