-- Which purchase order and vendor brought a serial in: every receipt of it, with the vendor's name,
-- the date and where it was put.
-- Run: audit sql --query purchase_of_serial --param serial=SN-001234
SELECT e.serial,
       p.name AS product_name,
       e.doc_number AS purchase_order,
       v.name AS vendor_name,
       d.party_id AS vendor_id,
       e.occurred_at AS received_at,
       l.name AS location_name,
       e.sublocation
FROM serial_events e
JOIN documents d ON d.company_id = e.company_id AND d.doc_type = e.doc_type AND d.doc_id = e.doc_id
LEFT JOIN products p ON p.company_id = e.company_id AND p.product_id = e.product_id
LEFT JOIN locations l ON l.company_id = e.company_id AND l.location_id = e.location_id
LEFT JOIN vendors v ON v.company_id = d.company_id AND v.vendor_id = d.party_id
WHERE e.serial = :serial
  AND e.retracted_at IS NULL
  AND e.event_type = 'received'
ORDER BY e.occurred_at, e.event_id;
