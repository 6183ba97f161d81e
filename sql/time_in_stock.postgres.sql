-- Time in stock per serial: the days between each arrival (received, restocked, adjusted in,
-- transfer received) and the next movement, added up; a serial still in stock counts until now.
-- One file per engine because date arithmetic differs; `--query time_in_stock` picks it.
-- Run: audit sql --query time_in_stock
-- Undated movements are placed as `audit timeline` places them (serial_events_effective); one
-- with no date at all to go by is left out.
WITH moves AS (
    SELECT e.company_id, e.product_id, p.name AS product_name, e.serial, e.quantity_delta,
           e.effective_at AS occurred_at,
           LEAD(e.effective_at) OVER (
               PARTITION BY e.company_id, e.product_id, e.serial ORDER BY e.effective_at, e.step, e.event_id
           ) AS next_at
    FROM serial_events_effective e
    LEFT JOIN products p ON p.company_id = e.company_id AND p.product_id = e.product_id
    WHERE e.quantity_delta <> 0 AND e.effective_at IS NOT NULL
)
SELECT serial,
       product_name,
       COUNT(*) AS stays,
       ROUND(SUM(EXTRACT(EPOCH FROM (COALESCE(next_at, now()) - occurred_at)) / 86400)::numeric, 1) AS days_in_stock,
       MAX(CASE WHEN next_at IS NULL THEN 1 ELSE 0 END) AS in_stock_now
FROM moves
WHERE quantity_delta > 0
GROUP BY company_id, product_id, product_name, serial
ORDER BY days_in_stock DESC, serial;
