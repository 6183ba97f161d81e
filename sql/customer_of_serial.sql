-- Which customer received a serial: every sales order that picked or shipped it, with the
-- customer's name (and id), when it was picked and shipped, and whether the customer returned it.
-- Run: audit sql --query customer_of_serial --param serial=SN-001234
SELECT e.serial,
       e.product_id,
       MAX(p.name) AS product_name,
       e.doc_number AS sales_order,
       MAX(c.name) AS customer_name,
       MAX(d.party_id) AS customer_id,
       MAX(CASE WHEN e.event_type = 'picked' THEN e.occurred_at END) AS picked_at,
       MAX(CASE WHEN e.event_type = 'shipped' THEN e.occurred_at END) AS shipped_at,
       MAX(CASE WHEN e.event_type = 'customer_return' THEN e.occurred_at END) AS returned_at
FROM serial_events e
JOIN documents d ON d.company_id = e.company_id AND d.doc_type = e.doc_type AND d.doc_id = e.doc_id
LEFT JOIN products p ON p.company_id = e.company_id AND p.product_id = e.product_id
LEFT JOIN customers c ON c.company_id = d.company_id AND c.customer_id = d.party_id
WHERE e.serial = :serial
  AND e.retracted_at IS NULL
  AND e.doc_type = 'sales_order'
  AND e.event_type IN ('picked', 'shipped', 'customer_return')
GROUP BY e.serial, e.product_id, e.doc_id, e.doc_number
-- Undated rows last on both engines (SQLite sorts NULL first, Postgres last).
ORDER BY picked_at NULLS LAST, shipped_at NULLS LAST;
