-- Recall from one serial (a faulty component, say): the serial itself, every finished unit built
-- from it (following serial_genealogy, through subassemblies too), where each one is now, and the
-- customer who has it. The same columns as recall.sql: level 0 is the serial itself (received_at
-- its first receipt, if any), level 1 a unit built from it, and so on.
-- Run: audit sql --query recall_serial --param serial=CHIP-000123
WITH RECURSIVE received AS (
    SELECT r.company_id, r.product_id, r.serial,
           MIN(CASE WHEN r.event_type = 'received' THEN r.occurred_at END) AS occurred_at
    FROM serial_events r
    WHERE r.serial = :serial
      AND r.retracted_at IS NULL
    GROUP BY r.company_id, r.product_id, r.serial
),
units (company_id, serial, product_id, received_at, level, unit_serial, unit_product_id, built_on) AS (
    SELECT company_id, serial, product_id, occurred_at, 0, serial, product_id, CAST(NULL AS TEXT)
    FROM received
    UNION ALL
    SELECT u.company_id, u.serial, u.product_id, u.received_at, u.level + 1,
           g.finished_serial, g.finished_product_id, g.doc_number
    FROM units u
    JOIN serial_genealogy g ON g.company_id = u.company_id
                           AND g.component_serial = u.unit_serial
                           AND g.component_product_id = u.unit_product_id
    WHERE u.level < 20
)
SELECT u.serial,
       p.name AS product_name,
       u.received_at,
       u.level,
       u.unit_serial,
       c.product_name AS unit_product_name,
       u.built_on,
       c.status,
       c.location_name,
       c.sublocation,
       c.since,
       c.last_event,
       c.doc_number AS last_document,
       CASE WHEN c.status = 'with_customer' THEN d.party_id END AS customer_id,
       CASE WHEN c.status = 'with_customer' THEN cu.name END AS customer_name
FROM units u
JOIN serial_current c ON c.company_id = u.company_id AND c.product_id = u.unit_product_id AND c.serial = u.unit_serial
LEFT JOIN products p ON p.company_id = u.company_id AND p.product_id = u.product_id
LEFT JOIN documents d ON d.company_id = c.company_id AND d.doc_type = c.doc_type AND d.doc_id = c.doc_id
LEFT JOIN customers cu ON cu.company_id = d.company_id AND cu.customer_id = d.party_id
ORDER BY u.serial, u.level, u.unit_serial;
