-- The read side's review: the same kinds as V8, computed more carefully. The same text runs on
-- Postgres (../postgres/V10__anomalies_as_of_their_clocks.sql) but for the lines marked "dialect".
--
-- * A stock snapshot is compared with the history it could know: events dated up to the moment
--   it completed (undated ones: recorded by then). A serial that moved after the snapshot is
--   news to it, not a disagreement, so an older snapshot does not report every later move.
-- * A transfer's time in transit is counted to the newest document that is not dated in the
--   future, and never below zero: one transfer dated next month no longer ages every other.
DROP VIEW serial_anomalies;
DROP VIEW serial_anomaly_findings;
DROP VIEW serial_stock_disagreements;

-- What `audit reconcile` lists: per company with a complete snapshot, each product and serial
-- where the latest snapshot and the history as the snapshot could know it disagree, by kind:
--   never_in_documents        on hand, and no known event of the serial under that product
--   on_hand_without_receipt   on hand, events, but none ever brought it into stock
--   on_hand_in_two_locations  on hand at two or more places
--   different_location        on hand at one place, in stock at another per the history
--   on_hand_but_history_gone  on hand, but the history has it out of stock
--   gone_but_history_on_hand  not on hand, but in stock per the history
--   negative_on_hand          below zero somewhere: removed more often than it came in
-- A line with quantity 0 counts as no line; no sublocation and an empty one are the same. The
-- history is serial_current's rule applied to the events the snapshot could know: those dated
-- up to its completion, and undated ones recorded by then.
CREATE VIEW serial_stock_disagreements AS
WITH snapshot AS (
    SELECT l.company_id, l.snapshot_id, t.completed_at AS snapshot_at
    FROM (SELECT company_id, MAX(snapshot_id) AS snapshot_id
          FROM stock_snapshots WHERE completed_at IS NOT NULL GROUP BY company_id) l
    JOIN stock_snapshots t ON t.snapshot_id = l.snapshot_id
),
stock AS (
    SELECT s.company_id, s.product_id, s.serial, s.snapshot_id,
           SUM(CASE WHEN s.quantity_on_hand > 0 THEN 1 ELSE 0 END) AS on_hand_lines,
           SUM(CASE WHEN s.quantity_on_hand < 0 THEN 1 ELSE 0 END) AS negative_lines,
           MIN(CASE WHEN s.quantity_on_hand > 0 THEN COALESCE(s.location_id, '') END) AS location_id,
           MIN(CASE WHEN s.quantity_on_hand > 0 THEN COALESCE(s.sublocation, '') END) AS sublocation
    FROM snapshot n
    JOIN serial_stock s ON s.snapshot_id = n.snapshot_id
    WHERE s.quantity_on_hand <> 0
    GROUP BY s.company_id, s.product_id, s.serial, s.snapshot_id
),
-- CROSS JOIN keeps the snapshots outermost: without one, no history is computed.
ranked AS (
    SELECT e.company_id, e.product_id, e.serial, e.event_type, e.quantity_delta, e.occurred_at,
           e.location_id, e.sublocation, e.doc_type, e.doc_id, e.doc_number, n.snapshot_id, n.snapshot_at,
           t.status_after,
           ROW_NUMBER() OVER (
               PARTITION BY e.company_id, e.product_id, e.serial
               ORDER BY CASE WHEN t.status_after IS NOT NULL THEN 0 ELSE 1 END,
                        CASE WHEN e.effective_at IS NULL THEN 0 ELSE 1 END,
                        e.effective_at DESC, e.step DESC, e.event_id DESC
           ) AS rank_in_serial,
           MAX(CASE WHEN e.quantity_delta > 0 THEN 1 ELSE 0 END)
               OVER (PARTITION BY e.company_id, e.product_id, e.serial) AS ever_in
    FROM snapshot n
    CROSS JOIN serial_events_effective e
    LEFT JOIN event_types t ON t.event_type = e.event_type
    WHERE e.company_id = n.company_id
      AND (e.occurred_at <= n.snapshot_at OR (e.occurred_at IS NULL AND e.observed_at <= n.snapshot_at))
),
history AS (
    SELECT r.company_id, r.product_id, COALESCE(r.product_id, '') AS pkey, r.serial,
           -- serial_current's rule (V10): the status of the latest event that sets one.
           COALESCE(r.status_after, 'never_stocked') AS status,
           CASE WHEN r.status_after IS NOT NULL THEN r.location_id END AS location_id,
           CASE WHEN r.status_after IS NOT NULL THEN r.sublocation END AS sublocation,
           CASE WHEN r.status_after IS NOT NULL THEN r.occurred_at END AS since,
           r.event_type AS last_event,
           r.doc_type, r.doc_id, r.doc_number, r.snapshot_id, r.snapshot_at, r.ever_in, r.rank_in_serial
    FROM ranked r
),
-- Every event meets its stock line, and only the history's last movement is judged: filtered
-- inside the judgement, the ranking cannot look like a few rows to a planner, which would then
-- compare each with every stock line.
judged AS (
    SELECT h.*, st.on_hand_lines, st.location_id AS stock_location_id, st.sublocation AS stock_sublocation,
           CASE WHEN h.rank_in_serial <> 1 THEN NULL
                WHEN st.negative_lines > 0 THEN 'negative_on_hand'
                WHEN st.company_id IS NULL THEN
                    CASE WHEN h.status = 'in_stock' THEN 'gone_but_history_on_hand' END
                WHEN st.on_hand_lines > 1 THEN 'on_hand_in_two_locations'
                WHEN h.ever_in = 0 THEN 'on_hand_without_receipt'
                WHEN h.status <> 'in_stock' THEN 'on_hand_but_history_gone'
                WHEN st.location_id <> COALESCE(h.location_id, '') OR st.sublocation <> COALESCE(h.sublocation, '')
                    THEN 'different_location'
           END AS kind
    FROM history h
    LEFT JOIN stock st ON st.company_id = h.company_id AND st.product_id = h.pkey AND st.serial = h.serial
)
SELECT j.company_id, j.kind, j.product_id, j.serial, j.snapshot_id, j.snapshot_at,
       CASE WHEN j.on_hand_lines = 1 THEN NULLIF(j.stock_location_id, '') END AS stock_location_id,
       CASE WHEN j.on_hand_lines = 1 THEN NULLIF(j.stock_sublocation, '') END AS stock_sublocation,
       j.status AS history_status, j.location_id AS history_location_id, j.sublocation AS history_sublocation,
       j.last_event AS history_event_type, j.doc_type AS history_doc_type, j.doc_id AS history_doc_id,
       j.doc_number AS history_doc_number, j.since AS history_since
FROM judged j
WHERE j.kind IS NOT NULL
UNION ALL
SELECT st.company_id,
       CASE WHEN st.negative_lines > 0 THEN 'negative_on_hand'
            WHEN st.on_hand_lines > 1 THEN 'on_hand_in_two_locations'
            ELSE 'never_in_documents' END,
       st.product_id, st.serial, st.snapshot_id, t.completed_at,
       CASE WHEN st.on_hand_lines = 1 THEN NULLIF(st.location_id, '') END,
       CASE WHEN st.on_hand_lines = 1 THEN NULLIF(st.sublocation, '') END,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM stock st
JOIN stock_snapshots t ON t.snapshot_id = st.snapshot_id
WHERE NOT EXISTS (
    SELECT 1 FROM serial_events e
    WHERE e.serial = st.serial AND e.company_id = st.company_id AND COALESCE(e.product_id, '') = st.product_id
      AND e.retracted_at IS NULL
      AND (e.occurred_at <= t.completed_at OR (e.occurred_at IS NULL AND e.observed_at <= t.completed_at))
);

-- Every finding; stuck_in_transit at any age (days_in_transit), which serial_anomalies and
-- `audit anomalies --transit-days N` cut.
--
-- Events are read as serial_events_effective has them: retracted ones never count, undated ones
-- are placed as serial_current places them. Most serials have a plain history (one product, at
-- most one sales order, no return, and at most one receipt followed by one removal from the
-- same place): one grouped scan, with no sort by time, proves that and leaves the rest as
-- suspects, whose events alone are ordered and judged. Transfers are found from the transfer
-- documents, stock disagreements by serial_stock_disagreements. A filter on company_id or
-- serial reaches every scan, so asking about one serial costs index look-ups only.
CREATE VIEW serial_anomaly_findings AS
WITH suspects AS (
    SELECT company_id, serial
    FROM (
        SELECT company_id, serial, COALESCE(product_id, '') AS pkey, quantity_delta, effective_at, location_id,
               CASE WHEN event_type IN ('sold', 'picked', 'shipped') THEN doc_id END AS sale_doc,
               CASE WHEN event_type IN ('customer_return', 'restocked') THEN 1 ELSE 0 END AS is_return
        FROM serial_events_effective
    ) e
    GROUP BY company_id, serial
    HAVING MIN(pkey) <> MAX(pkey)
        OR MIN(sale_doc) <> MAX(sale_doc)
        OR MAX(is_return) = 1
        OR SUM(CASE WHEN quantity_delta > 0 THEN 1 ELSE 0 END) > 1
        OR SUM(CASE WHEN quantity_delta < 0 THEN 1 ELSE 0 END) > SUM(CASE WHEN quantity_delta > 0 THEN 1 ELSE 0 END)
        OR (SUM(CASE WHEN quantity_delta < 0 THEN 1 ELSE 0 END) = 1
            AND (CASE WHEN MAX(CASE WHEN quantity_delta > 0 THEN effective_at END)
                           < MAX(CASE WHEN quantity_delta < 0 THEN effective_at END) THEN 0 ELSE 1 END = 1
                 OR COALESCE(MAX(CASE WHEN quantity_delta > 0 THEN location_id END), '')
                    <> COALESCE(MAX(CASE WHEN quantity_delta < 0 THEN location_id END), '')))
),
-- The suspects' events in time order. Every window has the same partition, the serial (a
-- filter on it then reaches the scans); each history (serial and product) is a run of it,
-- ordered by product first: a neighbour of another product is no neighbour, and the running
-- maximum of the products having had a sale (or a return) is this product exactly when this
-- product's history had one before.
ordered AS (
    SELECT x.*,
           CASE WHEN LAG(x.pkey) OVER moves = x.pkey AND LAG(x.is_move) OVER moves = 1
                THEN LAG(x.quantity_delta) OVER moves END AS prev_delta,
           LAG(x.location_id) OVER moves AS prev_location_id,
           LAG(x.event_id) OVER moves AS prev_move_id,
           CASE WHEN LAG(x.pkey) OVER sales = x.pkey AND LAG(x.is_sale + x.is_return) OVER sales = 1
                THEN LAG(x.is_sale) OVER sales END AS prev_sr_is_sale,
           LAG(x.doc_id) OVER sales AS prev_sr_doc_id,
           LAG(x.event_id) OVER sales AS prev_sr_id,
           CASE WHEN MAX(CASE WHEN x.is_sale = 1 THEN x.pkey END)
                         OVER (sales ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) = x.pkey
                THEN 1 ELSE 0 END AS sold_before,
           CASE WHEN MAX(CASE WHEN x.is_return = 1 THEN x.pkey END)
                         OVER (sales ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) = x.pkey
                THEN 1 ELSE 0 END AS returned_before,
           CASE WHEN LAG(x.pkey) OVER by_product = x.pkey THEN 0 ELSE 1 END AS first_in_product,
           FIRST_VALUE(x.pkey) OVER by_product AS min_pkey,
           FIRST_VALUE(x.pkey) OVER by_product_desc AS max_pkey,
           FIRST_VALUE(x.event_id) OVER by_product AS first_of_min_pkey,
           FIRST_VALUE(x.effective_at) OVER by_product AS first_at_min_pkey,
           FIRST_VALUE(x.event_id) OVER by_product_desc AS first_of_max_pkey,
           FIRST_VALUE(x.effective_at) OVER by_product_desc AS first_at_max_pkey
    FROM (
        SELECT e.event_id, s.company_id, s.serial, COALESCE(e.product_id, '') AS pkey, e.doc_id, e.event_type,
               e.step, e.effective_at, CASE WHEN e.effective_at IS NULL THEN 1 ELSE 0 END AS undated,
               e.location_id, e.quantity_delta,
               CASE WHEN e.quantity_delta <> 0 THEN 1 ELSE 0 END AS is_move,
               CASE WHEN e.event_type IN ('sold', 'picked', 'shipped') THEN 1 ELSE 0 END AS is_sale,
               CASE WHEN e.event_type IN ('customer_return', 'restocked') THEN 1 ELSE 0 END AS is_return
        FROM suspects s
        JOIN serial_events_effective e ON e.serial = s.serial AND e.company_id = s.company_id
    ) x
    WINDOW moves AS (PARTITION BY x.company_id, x.serial
                     ORDER BY x.pkey, x.is_move, x.undated, x.effective_at, x.step, x.event_id),
           sales AS (PARTITION BY x.company_id, x.serial
                     ORDER BY x.pkey, x.is_sale + x.is_return, x.undated, x.effective_at, x.step, x.event_id),
           by_product AS (PARTITION BY x.company_id, x.serial
                          ORDER BY x.pkey, x.undated, x.effective_at, x.step, x.event_id),
           by_product_desc AS (PARTITION BY x.company_id, x.serial
                               ORDER BY x.pkey DESC, x.undated, x.effective_at, x.step, x.event_id)
),
-- A sale right after a sale on another order, with no return between: the first such row of
-- each pair of orders, with both orders' customers.
paired AS (
    SELECT p.*, sd.party_id, pd.party_id AS prev_party_id,
           ROW_NUMBER() OVER (PARTITION BY p.company_id, p.serial, p.pkey, p.pair_low, p.pair_high
                              ORDER BY p.undated, p.effective_at, p.step, p.event_id) AS nth_of_pair
    FROM (
        SELECT o.*,
               CASE WHEN o.is_sale = 1 AND o.prev_sr_is_sale = 1 AND o.prev_sr_doc_id <> o.doc_id THEN
                   CASE WHEN o.doc_id < o.prev_sr_doc_id THEN o.doc_id ELSE o.prev_sr_doc_id END END AS pair_low,
               CASE WHEN o.is_sale = 1 AND o.prev_sr_is_sale = 1 AND o.prev_sr_doc_id <> o.doc_id THEN
                   CASE WHEN o.doc_id < o.prev_sr_doc_id THEN o.prev_sr_doc_id ELSE o.doc_id END END AS pair_high
        FROM ordered o
    ) p
    LEFT JOIN documents sd ON p.pair_low IS NOT NULL AND sd.company_id = p.company_id
                          AND sd.doc_type = 'sales_order' AND sd.doc_id = p.doc_id
    LEFT JOIN documents pd ON p.pair_low IS NOT NULL AND pd.company_id = p.company_id
                          AND pd.doc_type = 'sales_order' AND pd.doc_id = p.prev_sr_doc_id
),
found AS (
    SELECT p.company_id, k.kind, p.serial, p.event_id, p.effective_at,
           CASE k.kind
               WHEN 'sold_twice' THEN p.prev_sr_id
               WHEN 'one_serial_two_products' THEN
                   CASE WHEN p.pkey = p.min_pkey THEN p.first_of_max_pkey ELSE p.first_of_min_pkey END
               WHEN 'appeared_from_nowhere' THEN NULL
               WHEN 'returned_never_sold' THEN NULL
               ELSE p.prev_move_id
           END AS earlier_event_id,
           CASE WHEN k.kind <> 'one_serial_two_products' THEN p.effective_at
                WHEN p.first_at_min_pkey IS NULL OR p.first_at_max_pkey IS NULL THEN NULL
                WHEN p.first_at_min_pkey > p.first_at_max_pkey THEN p.first_at_min_pkey
                ELSE p.first_at_max_pkey
           END AS started_at,
           CAST(NULL AS BIGINT) AS days_in_transit
    FROM paired p
    -- CROSS JOIN keeps the findings outermost (SQLite would otherwise loop over the kinds and
    -- compute the findings again for each).
    CROSS JOIN anomaly_kinds k
    WHERE  (k.kind = 'appeared_from_nowhere' AND p.quantity_delta < 0 AND p.prev_delta IS NULL)
        OR (k.kind = 'out_twice' AND p.quantity_delta < 0 AND p.prev_delta < 0)
        OR (k.kind = 'in_twice' AND p.quantity_delta > 0 AND p.prev_delta > 0)
        OR (k.kind = 'moved_from_elsewhere' AND p.quantity_delta < 0 AND p.prev_delta > 0
            AND p.location_id <> p.prev_location_id)
        OR (k.kind = 'sold_twice' AND p.nth_of_pair = 1 AND p.party_id <> p.prev_party_id)
        OR (k.kind = 'returned_never_sold' AND p.is_return = 1 AND p.sold_before = 0 AND p.returned_before = 0)
        OR (k.kind = 'one_serial_two_products' AND p.min_pkey <> p.max_pkey AND p.first_in_product = 1)
    UNION ALL
    -- Sent on a transfer that has no receipt of the serial, aged to the newest document of the
    -- company not dated in the future (the history's own clock: a database not refreshed for a
    -- while does not age, and a date typed a year ahead does not age every transfer), and never
    -- less than zero days (a transfer dated after that document has just been sent).
    SELECT s.company_id, 'stuck_in_transit', s.serial, s.event_id, s.effective_at, NULL, s.effective_at,
           CAST(MAX(julianday(h.as_of) - julianday(s.effective_at), 0) AS BIGINT) -- dialect
    FROM documents d
    JOIN serial_events_effective s ON s.company_id = d.company_id AND s.doc_type = d.doc_type AND s.doc_id = d.doc_id
    JOIN (SELECT company_id, MAX(doc_date) AS as_of FROM documents
          WHERE deleted_at IS NULL AND julianday(doc_date) <= julianday('now') GROUP BY company_id) h -- dialect
        ON h.company_id = d.company_id
    WHERE d.doc_type = 'stock_transfer' AND s.event_type = 'transfer_sent'
      AND NOT EXISTS (
          SELECT 1 FROM serial_events r
          WHERE r.company_id = s.company_id AND r.doc_type = s.doc_type AND r.doc_id = s.doc_id
            AND r.serial = s.serial AND COALESCE(r.product_id, '') = COALESCE(s.product_id, '')
            AND r.event_type = 'transfer_received' AND r.retracted_at IS NULL)
)
SELECT f.company_id, f.kind, f.serial, ev.product_id, pr.name AS product_name,
       CASE f.kind
           WHEN 'appeared_from_nowhere' THEN
               ev.event_type || ' on ' || COALESCE(ev.doc_number, ev.doc_type || ' ' || ev.doc_id)
               || ' removes it from stock, but no earlier event brought it in'
           WHEN 'out_twice' THEN
               ev.event_type || ' on ' || COALESCE(ev.doc_number, ev.doc_type || ' ' || ev.doc_id)
               || ' removes it from stock again after ' || o.event_type || ' on '
               || COALESCE(o.doc_number, o.doc_type || ' ' || o.doc_id) || ', with nothing bringing it back between'
           WHEN 'in_twice' THEN
               ev.event_type || ' on ' || COALESCE(ev.doc_number, ev.doc_type || ' ' || ev.doc_id)
               || ' brings it into stock again after ' || o.event_type || ' on '
               || COALESCE(o.doc_number, o.doc_type || ' ' || o.doc_id) || ', with no removal between'
           WHEN 'moved_from_elsewhere' THEN
               ev.event_type || ' on ' || COALESCE(ev.doc_number, ev.doc_type || ' ' || ev.doc_id) || ' takes it from '
               || COALESCE(l.name, ev.location_id) || ', but ' || o.event_type || ' on '
               || COALESCE(o.doc_number, o.doc_type || ' ' || o.doc_id) || ' had put it at '
               || COALESCE(ol.name, o.location_id)
           WHEN 'stuck_in_transit' THEN
               'sent from ' || COALESCE(l.name, ev.location_id, 'an unknown location') || ' on '
               || COALESCE(ev.doc_number, ev.doc_type || ' ' || ev.doc_id) || ' and not received '
               || CAST(f.days_in_transit AS TEXT) || ' days later (by the newest document recorded)'
           WHEN 'sold_twice' THEN
               'sold to two customers with no return between: ' || o.event_type || ' on '
               || COALESCE(o.doc_number, o.doc_type || ' ' || o.doc_id) || ', then ' || ev.event_type || ' on '
               || COALESCE(ev.doc_number, ev.doc_type || ' ' || ev.doc_id)
           WHEN 'returned_never_sold' THEN
               ev.event_type || ' on ' || COALESCE(ev.doc_number, ev.doc_type || ' ' || ev.doc_id)
               || ', but no earlier sale of it is recorded'
           ELSE
               COALESCE(pr.name, pr.sku, ev.product_id, 'no product') || ' (' || ev.event_type || ' on '
               || COALESCE(ev.doc_number, ev.doc_type || ' ' || ev.doc_id) || ') and '
               || COALESCE(op.name, op.sku, o.product_id, 'no product') || ' (' || o.event_type || ' on '
               || COALESCE(o.doc_number, o.doc_type || ' ' || o.doc_id) || ') carry the same serial'
       END AS explanation,
       f.started_at,
       f.event_id, ev.event_type, ev.doc_type, ev.doc_number, ev.location_id, ev.sublocation,
       o.event_id AS earlier_event_id, o.event_type AS earlier_event_type, o.doc_type AS earlier_doc_type,
       o.doc_number AS earlier_doc_number,
       CASE WHEN f.kind = 'one_serial_two_products' THEN o.product_id END AS detail,
       f.days_in_transit
FROM found f
JOIN serial_events ev ON ev.event_id = f.event_id
LEFT JOIN serial_events o ON o.event_id = f.earlier_event_id
LEFT JOIN products pr ON pr.company_id = f.company_id AND pr.product_id = ev.product_id
LEFT JOIN products op ON op.company_id = o.company_id AND op.product_id = o.product_id
LEFT JOIN locations l ON l.company_id = f.company_id AND l.location_id = ev.location_id
LEFT JOIN locations ol ON ol.company_id = o.company_id AND ol.location_id = o.location_id
UNION ALL
SELECT d.company_id, 'history_and_stock_disagree', d.serial, d.product_id, pr.name,
       CASE d.kind
           WHEN 'negative_on_hand' THEN
               'inFlow shows less than zero on hand: it left stock more often than it came in'
               || COALESCE(' (last: ' || d.history_event_type || ' on ' || COALESCE(d.history_doc_number, d.history_doc_id)
                           || ')', '')
           WHEN 'on_hand_in_two_locations' THEN
               'inFlow has it on hand at two places at once'
               || COALESCE(' (the history: ' || d.history_event_type || ' on '
                           || COALESCE(d.history_doc_number, d.history_doc_id) || ')', '')
           WHEN 'never_in_documents' THEN
               'inFlow has it on hand at ' || COALESCE(sl.name, d.stock_location_id, 'an unknown location')
               || ', but no document mentions it'
           WHEN 'gone_but_history_on_hand' THEN
               'the history has it in stock at ' || COALESCE(hl.name, d.history_location_id, 'an unknown location')
               || ' (' || d.history_event_type || ' on ' || COALESCE(d.history_doc_number, d.history_doc_id)
               || '), but inFlow does not have it on hand'
           WHEN 'on_hand_without_receipt' THEN
               'inFlow has it on hand at ' || COALESCE(sl.name, d.stock_location_id, 'an unknown location')
               || ', but no recorded event ever brought it into stock (last: ' || d.history_event_type || ' on '
               || COALESCE(d.history_doc_number, d.history_doc_id) || ')'
           WHEN 'on_hand_but_history_gone' THEN
               'inFlow has it on hand at ' || COALESCE(sl.name, d.stock_location_id, 'an unknown location')
               || ', but the history says it left stock (' || d.history_event_type || ' on '
               || COALESCE(d.history_doc_number, d.history_doc_id) || ')'
           ELSE
               'inFlow has it on hand at ' || COALESCE(sl.name, d.stock_location_id, 'an unknown location')
               || COALESCE(' / ' || d.stock_sublocation, '') || ', the history at '
               || COALESCE(hl.name, d.history_location_id, 'an unknown location')
               || COALESCE(' / ' || d.history_sublocation, '') || ' (' || d.history_event_type || ' on '
               || COALESCE(d.history_doc_number, d.history_doc_id) || ')'
       END,
       d.snapshot_at, NULL, d.history_event_type, d.history_doc_type, d.history_doc_number, d.history_location_id,
       d.history_sublocation, NULL, NULL, NULL, NULL, d.kind, NULL
FROM serial_stock_disagreements d
LEFT JOIN products pr ON pr.company_id = d.company_id AND pr.product_id = d.product_id
LEFT JOIN locations sl ON sl.company_id = d.company_id AND sl.location_id = d.stock_location_id
LEFT JOIN locations hl ON hl.company_id = d.company_id AND hl.location_id = d.history_location_id;

-- Each history that needs a look, and why (see anomaly_kinds). A transfer counts as stuck after
-- 14 days in transit.
CREATE VIEW serial_anomalies AS
SELECT * FROM serial_anomaly_findings
WHERE kind <> 'stuck_in_transit' OR days_in_transit > 14;
