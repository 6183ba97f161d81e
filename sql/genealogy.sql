-- The bill of serials of one serial, from serial_genealogy: every component built into it (and
-- theirs, through subassemblies), and every unit it was built into (and what those went into).
-- level 1 is a direct link; parent_serial is the serial of the level above; built_at is when the
-- unit was put away (NULL while its manufacturing order is not completed); matched_to says how
-- closely the link is known (unit: this very unit; line: one of the units of an order line;
-- order: one of the units of the order). `audit timeline SERIAL --tree` prints the same tree.
-- Run: audit sql --query genealogy --param serial=LAP-000123
WITH RECURSIVE
down (company_id, level, parent_serial, serial, product_id, product_name, manufacturing_order, built_at, matched_to) AS (
    SELECT g.company_id, 1, g.finished_serial, g.component_serial, g.component_product_id, g.component_product_name,
           g.doc_number, g.built_at, g.matched_to
    FROM serial_genealogy g
    WHERE g.finished_serial = :serial
    UNION ALL
    SELECT g.company_id, d.level + 1, g.finished_serial, g.component_serial, g.component_product_id,
           g.component_product_name, g.doc_number, g.built_at, g.matched_to
    FROM down d
    JOIN serial_genealogy g ON g.company_id = d.company_id
                           AND g.finished_serial = d.serial
                           AND g.finished_product_id = d.product_id
    WHERE d.level < 20
),
up (company_id, level, parent_serial, serial, product_id, product_name, manufacturing_order, built_at, matched_to) AS (
    SELECT g.company_id, 1, g.component_serial, g.finished_serial, g.finished_product_id, g.finished_product_name,
           g.doc_number, g.built_at, g.matched_to
    FROM serial_genealogy g
    WHERE g.component_serial = :serial
    UNION ALL
    SELECT g.company_id, u.level + 1, g.component_serial, g.finished_serial, g.finished_product_id,
           g.finished_product_name, g.doc_number, g.built_at, g.matched_to
    FROM up u
    JOIN serial_genealogy g ON g.company_id = u.company_id
                           AND g.component_serial = u.serial
                           AND g.component_product_id = u.product_id
    WHERE u.level < 20
)
SELECT 'component' AS direction, level, parent_serial, serial, product_name, manufacturing_order, built_at,
       matched_to, company_id, product_id
FROM down
UNION ALL
SELECT 'built_into' AS direction, level, parent_serial, serial, product_name, manufacturing_order, built_at,
       matched_to, company_id, product_id
FROM up
ORDER BY direction DESC, level, parent_serial, serial;
