-- Time in stock per serial: the days between each arrival (received, restocked, adjusted in,
-- transfer received) and the next movement, added up; a serial still in stock counts until now.
-- One file per engine because date arithmetic differs; `--file sql/time_in_stock.sql` picks it.
-- Run: audit sql --file sql/time_in_stock.sql
WITH moves AS (
    SELECT company_id, product_id, product_name, serial, quantity_delta, occurred_at,
           LEAD(occurred_at) OVER (
               PARTITION BY company_id, product_id, serial ORDER BY occurred_at, step, event_id
           ) AS next_at
    FROM serial_timeline
    WHERE quantity_delta <> 0 AND occurred_at IS NOT NULL
)
SELECT serial,
       product_name,
       COUNT(*) AS stays,
       ROUND(SUM(julianday(COALESCE(next_at, CURRENT_TIMESTAMP)) - julianday(occurred_at)), 1) AS days_in_stock,
       MAX(CASE WHEN next_at IS NULL THEN 1 ELSE 0 END) AS in_stock_now
FROM moves
WHERE quantity_delta > 0
GROUP BY company_id, product_id, product_name, serial
ORDER BY days_in_stock DESC, serial;
