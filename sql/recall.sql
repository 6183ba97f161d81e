-- Recall: every serial that arrived on one purchase order, and where each one is now
-- (status in_stock, in_transit, with_customer, returned_to_vendor or adjusted_out).
-- Run: audit sql --file sql/recall.sql --param po_number=PO-000012
SELECT r.serial,
       c.product_name,
       r.occurred_at AS received_at,
       c.status,
       c.location_name,
       c.sublocation,
       c.since,
       c.last_event,
       c.doc_number AS last_document
FROM serial_events r
JOIN serial_current c ON c.company_id = r.company_id AND c.product_id = r.product_id AND c.serial = r.serial
WHERE r.doc_type = 'purchase_order'
  AND r.doc_number = :po_number
  AND r.event_type = 'received'
  AND r.retracted_at IS NULL
ORDER BY c.status, r.serial;
