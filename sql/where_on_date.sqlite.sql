-- Where a serial was on a business day: its status and location at the end of that day (UTC),
-- by the rule of serial_current, over the current events that had happened by then. Undated
-- events with no earlier step to borrow a date from are left out: nothing says they had
-- happened. The history as known today (retractions apply); `audit timeline SERIAL --on DAY`
-- answers the same, in the local time zone unless --utc is given.
-- Run: audit sql --query where_on_date --param serial=SN-000382 --param on=2025-06-18
WITH ranked AS (
    SELECT e.company_id, e.product_id, e.serial, e.event_type, t.status_after, e.occurred_at,
           e.location_id, e.sublocation, e.doc_type, e.doc_number,
           ROW_NUMBER() OVER (
               PARTITION BY e.company_id, e.product_id, e.serial
               ORDER BY CASE WHEN t.status_after IS NOT NULL THEN 0 ELSE 1 END,
                        e.effective_at DESC, e.step DESC, e.event_id DESC
           ) AS rank_in_serial,
           FIRST_VALUE(e.event_type) OVER (
               PARTITION BY e.company_id, e.product_id, e.serial
               ORDER BY e.effective_at DESC, e.step DESC, e.event_id DESC
           ) AS last_event
    FROM serial_events_effective e
    LEFT JOIN event_types t ON t.event_type = e.event_type
    WHERE e.serial = :serial
      -- ISO-8601 UTC text compares with the next day's date
      AND e.effective_at < date(:on, '+1 day')
)
SELECT r.company_id,
       r.serial,
       p.name AS product_name,
       COALESCE(r.status_after, 'never_stocked') AS status,
       CASE WHEN r.status_after IS NOT NULL THEN l.name END AS location_name,
       CASE WHEN r.status_after IS NOT NULL THEN r.sublocation END AS sublocation,
       CASE WHEN r.status_after IS NOT NULL THEN r.occurred_at END AS since,
       r.last_event,
       r.doc_type,
       r.doc_number
FROM ranked r
LEFT JOIN products p ON p.company_id = r.company_id AND p.product_id = r.product_id
LEFT JOIN locations l ON l.company_id = r.company_id AND l.location_id = r.location_id
WHERE r.rank_in_serial = 1
ORDER BY r.company_id, r.product_id;
