-- Serials that moved (into or out of stock) in a period, from :from (inclusive) to :to
-- (exclusive), in UTC: a date (2025-07-01) or a time written 2025-07-01T12:00:00+00:00.
-- Run: audit sql --query moved_between --param from=2025-07-01 --param to=2025-08-01
SELECT occurred_at,
       serial,
       product_name,
       event_type,
       quantity_delta,
       doc_type,
       doc_number,
       location_name,
       sublocation
FROM serial_timeline
WHERE quantity_delta <> 0
  AND occurred_at >= :from
  AND occurred_at < :to
ORDER BY occurred_at, step, event_id;
