-- Customers and vendors, so that output shows names instead of GUIDs; the latest stock with
-- product and location names; and a comment on every table, view and column (SQLite keeps
-- its comments in the CREATE statements, Postgres in the catalog).

CREATE TABLE customers (
    company_id  TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    name        TEXT,
    is_active   BOOLEAN,
    row_version TEXT,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (company_id, customer_id)
);

CREATE TABLE vendors (
    company_id  TEXT NOT NULL,
    vendor_id   TEXT NOT NULL,
    name        TEXT,
    is_active   BOOLEAN,
    row_version TEXT,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (company_id, vendor_id)
);

-- New columns go last, so the view is replaced in place (views built on it stay).
CREATE OR REPLACE VIEW serial_stock_latest AS
SELECT s.snapshot_id, s.company_id, s.product_id, s.serial, s.location_id, s.sublocation,
       s.quantity_on_hand, t.completed_at AS snapshot_at,
       p.name AS product_name, l.name AS location_name
FROM serial_stock s
JOIN stock_snapshots t ON t.snapshot_id = s.snapshot_id
LEFT JOIN products p ON p.company_id = s.company_id AND p.product_id = s.product_id
LEFT JOIN locations l ON l.company_id = s.company_id AND l.location_id = s.location_id
WHERE t.snapshot_id = (
    SELECT MAX(l2.snapshot_id) FROM stock_snapshots l2
    WHERE l2.company_id = s.company_id AND l2.completed_at IS NOT NULL
);

-- Orders stored before V12 name customers and vendors never fetched, and an unchanged order
-- never asks for them: the next run owes one walk of each list an order names.
INSERT INTO sync_state (company_id, stream, walk_id, walk_kind, walk_paging, walk_position, walk_started_at)
SELECT d.company_id, CASE d.doc_type WHEN 'sales_order' THEN 'customers' ELSE 'vendors' END,
       COALESCE((SELECT MAX(r.run_id) FROM ingest_runs r WHERE r.company_id = d.company_id), 0),
       'complete', 'keyset', '', now()
FROM documents d
WHERE d.doc_type IN ('sales_order', 'purchase_order') AND d.party_id IS NOT NULL
GROUP BY d.company_id, d.doc_type;

-- Comments on every table, view and column (the SQLite ones are in its CREATE statements).
COMMENT ON TABLE anomaly_kinds IS 'The kinds of serial anomaly audit finds, with what each means.';
COMMENT ON COLUMN anomaly_kinds.kind IS 'the anomaly kind''s code';
COMMENT ON COLUMN anomaly_kinds.description IS 'what it means, for people';
COMMENT ON TABLE api_capabilities IS 'What audit doctor or an ingest learnt about this inFlow account: paging modes, rate headers, X-listCount.';
COMMENT ON COLUMN api_capabilities.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN api_capabilities.name IS 'credentials, paging:sales-orders, list_count, ...';
COMMENT ON COLUMN api_capabilities.value IS 'the answer, short: ok, keyset, total, remaining, missing, ...';
COMMENT ON COLUMN api_capabilities.detail IS 'what was seen, for people';
COMMENT ON COLUMN api_capabilities.api_version IS 'the version sent in the Accept header';
COMMENT ON COLUMN api_capabilities.source IS 'doctor or ingest';
COMMENT ON COLUMN api_capabilities.checked_at IS 'when it was found out';
COMMENT ON TABLE customers IS 'The company''s customers, so that output shows names: fetched when an order names one not stored.';
COMMENT ON COLUMN customers.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN customers.customer_id IS 'inFlow''s customerId';
COMMENT ON COLUMN customers.name IS 'the customer''s name';
COMMENT ON COLUMN customers.is_active IS 'whether inFlow shows it as active';
COMMENT ON COLUMN customers.row_version IS 'inFlow''s `timestamp` of it';
COMMENT ON COLUMN customers.updated_at IS 'when audit last stored it';
COMMENT ON TABLE document_changes IS 'Every change audit saw to a document: changed, cancelled, uncancelled, deleted, reappeared.';
COMMENT ON COLUMN document_changes.change_id IS 'the change''s id';
COMMENT ON COLUMN document_changes.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN document_changes.doc_type IS 'document type: sales_order, purchase_order, stock_adjustment, stock_transfer, manufacturing_order, stock_count';
COMMENT ON COLUMN document_changes.doc_id IS 'inFlow''s GUID of the document';
COMMENT ON COLUMN document_changes.doc_number IS 'the document''s number as people know it (order or transfer number)';
COMMENT ON COLUMN document_changes.run_id IS 'the ingest run (ingest_runs.run_id) that wrote the row';
COMMENT ON COLUMN document_changes.observed_at IS 'when audit saw the change';
COMMENT ON COLUMN document_changes.change IS 'changed, cancelled, uncancelled, deleted, reappeared';
COMMENT ON COLUMN document_changes.old_row_version IS 'header `timestamp` before the change';
COMMENT ON COLUMN document_changes.new_row_version IS 'header `timestamp` after the change';
COMMENT ON COLUMN document_changes.old_lines_version IS 'lines digest before the change';
COMMENT ON COLUMN document_changes.new_lines_version IS 'lines digest after the change';
COMMENT ON COLUMN document_changes.events_inserted IS 'events the change added';
COMMENT ON COLUMN document_changes.events_retracted IS 'events the change withdrew';
COMMENT ON TABLE documents IS 'Every inFlow document read, in its latest version, with its raw JSON.';
COMMENT ON COLUMN documents.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN documents.doc_type IS 'document type: sales_order, purchase_order, stock_adjustment, stock_transfer, manufacturing_order, stock_count';
COMMENT ON COLUMN documents.doc_id IS 'inFlow''s GUID of the document';
COMMENT ON COLUMN documents.doc_number IS 'the document''s number as people know it (order or transfer number)';
COMMENT ON COLUMN documents.doc_date IS 'orderDate, date or transferDate';
COMMENT ON COLUMN documents.doc_status IS 'the document''s status (inventoryStatus, status, ...)';
COMMENT ON COLUMN documents.party_id IS 'customerId of a sales order, vendorId of a purchase order';
COMMENT ON COLUMN documents.row_version IS 'the header `timestamp`';
COMMENT ON COLUMN documents.lines_version IS 'digest of every line''s id and `timestamp`';
COMMENT ON COLUMN documents.is_cancelled IS 'whether inFlow shows the document as cancelled';
COMMENT ON COLUMN documents.deleted_at IS 'set when a complete walk no longer returns it';
COMMENT ON COLUMN documents.deleted_run_id IS 'the run that found it deleted';
COMMENT ON COLUMN documents.raw IS 'the document''s JSON as inFlow returned it (JSONB)';
COMMENT ON COLUMN documents.first_seen_at IS 'when audit first fetched the document';
COMMENT ON COLUMN documents.first_run_id IS 'the run that first fetched it';
COMMENT ON COLUMN documents.changed_at IS 'when this version was first fetched';
COMMENT ON COLUMN documents.changed_run_id IS 'the run that fetched this version';
COMMENT ON COLUMN documents.last_seen_at IS 'when a walk last returned it';
COMMENT ON COLUMN documents.last_seen_run_id IS 'the run that last returned it';
COMMENT ON COLUMN documents.seen_walk_id IS 'the walk that last returned it';
COMMENT ON COLUMN documents.raw_text IS 'the JSON as text when Postgres''s JSONB cannot hold it';
COMMENT ON TABLE event_types IS 'The serial event types: their order within a document, stock effect and the status each leaves.';
COMMENT ON COLUMN event_types.event_type IS 'the event type''s code';
COMMENT ON COLUMN event_types.step IS 'order of the event types within one document (event_types.step)';
COMMENT ON COLUMN event_types.quantity_delta IS '+1 into stock, -1 out of stock, 0 neither';
COMMENT ON COLUMN event_types.doc_type IS 'the document type that records it';
COMMENT ON COLUMN event_types.description IS 'what it means, for people';
COMMENT ON TABLE genealogy_links IS 'Which component serials manufacturing orders built into which finished units.';
COMMENT ON COLUMN genealogy_links.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN genealogy_links.doc_type IS 'manufacturing_order';
COMMENT ON COLUMN genealogy_links.doc_id IS 'inFlow''s GUID of the manufacturing order';
COMMENT ON COLUMN genealogy_links.doc_number IS 'the manufacturing order''s number';
COMMENT ON COLUMN genealogy_links.order_status IS 'the manufacturing order''s status';
COMMENT ON COLUMN genealogy_links.component_serial IS 'the serial built into the unit';
COMMENT ON COLUMN genealogy_links.component_product_id IS 'the component''s product GUID';
COMMENT ON COLUMN genealogy_links.finished_serial IS 'the serial of the unit built (NULL when not known)';
COMMENT ON COLUMN genealogy_links.finished_product_id IS 'the finished product''s GUID';
COMMENT ON COLUMN genealogy_links.built_at IS 'when the unit was put away; NULL until completed';
COMMENT ON COLUMN genealogy_links.matched_to IS 'unit, line or order: how closely the link is known';
COMMENT ON COLUMN genealogy_links.observed_at IS 'when audit recorded the row';
COMMENT ON COLUMN genealogy_links.run_id IS 'the ingest run (ingest_runs.run_id) that wrote the row';
COMMENT ON TABLE ingest_locks IS 'One row per company while an ingest holds it, so that two runs do not write at once.';
COMMENT ON COLUMN ingest_locks.company_id IS 'inFlow company GUID the lock is for';
COMMENT ON COLUMN ingest_locks.holder IS 'for people: command, pid, host, run';
COMMENT ON COLUMN ingest_locks.pid IS 'process id of the holder';
COMMENT ON COLUMN ingest_locks.host IS 'host name of the holder';
COMMENT ON COLUMN ingest_locks.token IS 'unique per acquisition, so only the holder releases it';
COMMENT ON COLUMN ingest_locks.acquired_at IS 'when the lock was taken';
COMMENT ON COLUMN ingest_locks.heartbeat_at IS 'when the holder last said it is alive';
COMMENT ON TABLE ingest_runs IS 'One row per ingest run: what it read, wrote and cost.';
COMMENT ON COLUMN ingest_runs.run_id IS 'the run''s id';
COMMENT ON COLUMN ingest_runs.company_id IS 'inFlow company GUID the run read';
COMMENT ON COLUMN ingest_runs.command IS 'the audit command that ran';
COMMENT ON COLUMN ingest_runs.status IS 'running, succeeded, stopped, failed, interrupted';
COMMENT ON COLUMN ingest_runs.started_at IS 'when it started';
COMMENT ON COLUMN ingest_runs.finished_at IS 'when it finished (NULL while running)';
COMMENT ON COLUMN ingest_runs.arguments IS 'the options as JSON (never the API key)';
COMMENT ON COLUMN ingest_runs.api_version IS 'the inFlow API version sent in the Accept header';
COMMENT ON COLUMN ingest_runs.requests IS 'requests sent to inFlow';
COMMENT ON COLUMN ingest_runs.pages IS 'pages read';
COMMENT ON COLUMN ingest_runs.documents_seen IS 'documents read';
COMMENT ON COLUMN ingest_runs.documents_changed IS 'documents new or changed';
COMMENT ON COLUMN ingest_runs.events_inserted IS 'events added';
COMMENT ON COLUMN ingest_runs.events_retracted IS 'events withdrawn';
COMMENT ON COLUMN ingest_runs.warnings IS 'warnings recorded (run_warnings)';
COMMENT ON COLUMN ingest_runs.rate_limited IS '429 answers received';
COMMENT ON COLUMN ingest_runs.retries IS 'requests retried';
COMMENT ON COLUMN ingest_runs.error IS 'what failed, when the run failed';
COMMENT ON TABLE locations IS 'The company''s locations, so that output shows names.';
COMMENT ON COLUMN locations.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN locations.location_id IS 'inFlow''s GUID of the location';
COMMENT ON COLUMN locations.name IS 'the location''s name';
COMMENT ON COLUMN locations.is_active IS 'whether inFlow shows it as active';
COMMENT ON COLUMN locations.row_version IS 'inFlow''s `timestamp` (rowversion) of it';
COMMENT ON COLUMN locations.updated_at IS 'when audit last stored it';
COMMENT ON TABLE products IS 'The company''s products, so that output shows names and SKUs.';
COMMENT ON COLUMN products.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN products.product_id IS 'inFlow''s GUID of the product';
COMMENT ON COLUMN products.name IS 'the product''s name';
COMMENT ON COLUMN products.sku IS 'the product''s SKU';
COMMENT ON COLUMN products.track_serials IS 'whether the product is serialized';
COMMENT ON COLUMN products.is_active IS 'whether inFlow shows it as active';
COMMENT ON COLUMN products.item_type IS 'inFlow''s item type: stockedProduct, serviceProduct, ...';
COMMENT ON COLUMN products.row_version IS 'inFlow''s `timestamp` (rowversion) of it';
COMMENT ON COLUMN products.updated_at IS 'when audit last stored it';
COMMENT ON TABLE quarantined_documents IS 'Documents that could not be read, kept as returned, with why.';
COMMENT ON COLUMN quarantined_documents.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN quarantined_documents.doc_type IS 'document type: sales_order, purchase_order, stock_adjustment, stock_transfer, manufacturing_order, stock_count';
COMMENT ON COLUMN quarantined_documents.doc_key IS 'SHA-256 of the id (of the JSON when it has none): ids can be too long to index';
COMMENT ON COLUMN quarantined_documents.doc_id IS 'inFlow''s id of the document, when it has one';
COMMENT ON COLUMN quarantined_documents.reason IS 'why it was quarantined';
COMMENT ON COLUMN quarantined_documents.raw IS 'the document''s JSON as returned';
COMMENT ON COLUMN quarantined_documents.first_seen_at IS 'when audit first fetched it';
COMMENT ON COLUMN quarantined_documents.first_run_id IS 'the run that first fetched it';
COMMENT ON COLUMN quarantined_documents.last_seen_at IS 'when audit last fetched it';
COMMENT ON COLUMN quarantined_documents.last_run_id IS 'the run that last fetched it';
COMMENT ON TABLE run_warnings IS 'Odd data met during a run: empty or repeated serials, paging fallbacks, ...';
COMMENT ON COLUMN run_warnings.warning_id IS 'the warning''s id';
COMMENT ON COLUMN run_warnings.run_id IS 'the ingest run (ingest_runs.run_id) that wrote the row';
COMMENT ON COLUMN run_warnings.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN run_warnings.doc_type IS 'the document type concerned, if any';
COMMENT ON COLUMN run_warnings.doc_id IS 'the document concerned, if any';
COMMENT ON COLUMN run_warnings.doc_number IS 'that document''s number';
COMMENT ON COLUMN run_warnings.line_collection IS 'the JSON key the serial came from: lines, pickLines, ...';
COMMENT ON COLUMN run_warnings.line_id IS 'the line concerned, if any';
COMMENT ON COLUMN run_warnings.kind IS 'a short code: empty_serial, repeated_serial, paging_fallback, ...';
COMMENT ON COLUMN run_warnings.detail IS 'what was met, for people';
COMMENT ON VIEW serial_anomalies IS 'Anomalies in serial histories (sold twice, returned never sold, ...), one row each.';
COMMENT ON COLUMN serial_anomalies.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN serial_anomalies.kind IS 'the anomaly kind (anomaly_kinds.kind)';
COMMENT ON COLUMN serial_anomalies.serial IS 'the serial number';
COMMENT ON COLUMN serial_anomalies.product_id IS 'inFlow''s GUID of the product';
COMMENT ON COLUMN serial_anomalies.product_name IS 'the product''s name (NULL until the products are fetched)';
COMMENT ON COLUMN serial_anomalies.explanation IS 'what the kind means, for people';
COMMENT ON COLUMN serial_anomalies.started_at IS 'when the anomaly began, by its event''s date';
COMMENT ON COLUMN serial_anomalies.event_id IS 'the event''s id (serial_events.event_id)';
COMMENT ON COLUMN serial_anomalies.event_type IS 'the movement: received, picked, shipped, transfer_sent, ... (event_types)';
COMMENT ON COLUMN serial_anomalies.doc_type IS 'document type: sales_order, purchase_order, stock_adjustment, stock_transfer, manufacturing_order, stock_count';
COMMENT ON COLUMN serial_anomalies.doc_number IS 'the document''s number as people know it (order or transfer number)';
COMMENT ON COLUMN serial_anomalies.location_id IS 'inFlow''s GUID of the location';
COMMENT ON COLUMN serial_anomalies.sublocation IS 'the bin or shelf inside the location';
COMMENT ON COLUMN serial_anomalies.earlier_event_id IS 'the earlier event the finding pairs with';
COMMENT ON COLUMN serial_anomalies.earlier_event_type IS 'that earlier event''s type';
COMMENT ON COLUMN serial_anomalies.earlier_doc_type IS 'that earlier event''s document type';
COMMENT ON COLUMN serial_anomalies.earlier_doc_number IS 'that earlier event''s document number';
COMMENT ON COLUMN serial_anomalies.detail IS 'details of the finding, for people';
COMMENT ON COLUMN serial_anomalies.days_in_transit IS 'days since a transfer was sent, for serials still in transit';
COMMENT ON VIEW serial_anomaly_findings IS 'Every anomaly finding before they are merged into serial_anomalies.';
COMMENT ON COLUMN serial_anomaly_findings.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN serial_anomaly_findings.kind IS 'the anomaly kind (anomaly_kinds.kind)';
COMMENT ON COLUMN serial_anomaly_findings.serial IS 'the serial number';
COMMENT ON COLUMN serial_anomaly_findings.product_id IS 'inFlow''s GUID of the product';
COMMENT ON COLUMN serial_anomaly_findings.product_name IS 'the product''s name (NULL until the products are fetched)';
COMMENT ON COLUMN serial_anomaly_findings.explanation IS 'what the kind means, for people';
COMMENT ON COLUMN serial_anomaly_findings.started_at IS 'when the anomaly began, by its event''s date';
COMMENT ON COLUMN serial_anomaly_findings.event_id IS 'the event''s id (serial_events.event_id)';
COMMENT ON COLUMN serial_anomaly_findings.event_type IS 'the movement: received, picked, shipped, transfer_sent, ... (event_types)';
COMMENT ON COLUMN serial_anomaly_findings.doc_type IS 'document type: sales_order, purchase_order, stock_adjustment, stock_transfer, manufacturing_order, stock_count';
COMMENT ON COLUMN serial_anomaly_findings.doc_number IS 'the document''s number as people know it (order or transfer number)';
COMMENT ON COLUMN serial_anomaly_findings.location_id IS 'inFlow''s GUID of the location';
COMMENT ON COLUMN serial_anomaly_findings.sublocation IS 'the bin or shelf inside the location';
COMMENT ON COLUMN serial_anomaly_findings.earlier_event_id IS 'the earlier event the finding pairs with';
COMMENT ON COLUMN serial_anomaly_findings.earlier_event_type IS 'that earlier event''s type';
COMMENT ON COLUMN serial_anomaly_findings.earlier_doc_type IS 'that earlier event''s document type';
COMMENT ON COLUMN serial_anomaly_findings.earlier_doc_number IS 'that earlier event''s document number';
COMMENT ON COLUMN serial_anomaly_findings.detail IS 'details of the finding, for people';
COMMENT ON COLUMN serial_anomaly_findings.days_in_transit IS 'days since a transfer was sent, for serials still in transit';
COMMENT ON VIEW serial_current IS 'Where each serial stands now, by its current events.';
COMMENT ON COLUMN serial_current.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN serial_current.product_id IS 'inFlow''s GUID of the product';
COMMENT ON COLUMN serial_current.product_name IS 'the product''s name (NULL until the products are fetched)';
COMMENT ON COLUMN serial_current.product_sku IS 'the product''s SKU';
COMMENT ON COLUMN serial_current.serial IS 'the serial number';
COMMENT ON COLUMN serial_current.status IS 'where the serial stands: in_stock, in_transit, picked, with_customer, ... (event_types.status_after)';
COMMENT ON COLUMN serial_current.location_id IS 'inFlow''s GUID of the location';
COMMENT ON COLUMN serial_current.location_name IS 'the location''s name (NULL until the locations are fetched)';
COMMENT ON COLUMN serial_current.sublocation IS 'the bin or shelf inside the location';
COMMENT ON COLUMN serial_current.since IS 'since when the serial has been in this status';
COMMENT ON COLUMN serial_current.last_event IS 'its latest current event type';
COMMENT ON COLUMN serial_current.doc_type IS 'the document type of the latest event';
COMMENT ON COLUMN serial_current.doc_id IS 'the document of the latest event';
COMMENT ON COLUMN serial_current.doc_number IS 'the document number of the latest event';
COMMENT ON TABLE serial_events IS 'The audit trail: one row per serial movement found in a document line.';
COMMENT ON COLUMN serial_events.event_id IS 'the event''s id';
COMMENT ON COLUMN serial_events.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN serial_events.serial IS 'the serial number';
COMMENT ON COLUMN serial_events.product_id IS 'inFlow''s GUID of the product';
COMMENT ON COLUMN serial_events.doc_type IS 'sales_order, purchase_order, stock_adjustment, stock_transfer';
COMMENT ON COLUMN serial_events.doc_id IS 'inFlow''s GUID of the document';
COMMENT ON COLUMN serial_events.doc_number IS 'the document''s number as people know it (order or transfer number)';
COMMENT ON COLUMN serial_events.line_collection IS 'the JSON key the serial came from: lines, pickLines, ...';
COMMENT ON COLUMN serial_events.line_id IS 'inFlow''s GUID of the document line';
COMMENT ON COLUMN serial_events.event_type IS 'sold, picked, shipped, received, transfer_sent, ...';
COMMENT ON COLUMN serial_events.occurred_at IS 'NULL when the document gives no date';
COMMENT ON COLUMN serial_events.location_id IS 'inFlow''s GUID of the location';
COMMENT ON COLUMN serial_events.sublocation IS 'the bin or shelf inside the location';
COMMENT ON COLUMN serial_events.quantity_delta IS '+1 into stock, -1 out of stock, 0 neither';
COMMENT ON COLUMN serial_events.doc_status IS 'the document''s status when the event was recorded';
COMMENT ON COLUMN serial_events.observed_at IS 'when audit recorded the row';
COMMENT ON COLUMN serial_events.run_id IS 'the ingest run (ingest_runs.run_id) that wrote the row';
COMMENT ON COLUMN serial_events.retracted_at IS 'when a later version of the document withdrew the event (NULL: current)';
COMMENT ON COLUMN serial_events.retracted_run_id IS 'the run that withdrew it';
COMMENT ON VIEW serial_events_effective IS 'Current events with the time each is taken to have happened (effective_at).';
COMMENT ON COLUMN serial_events_effective.event_id IS 'the event''s id (serial_events.event_id)';
COMMENT ON COLUMN serial_events_effective.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN serial_events_effective.serial IS 'the serial number';
COMMENT ON COLUMN serial_events_effective.product_id IS 'inFlow''s GUID of the product';
COMMENT ON COLUMN serial_events_effective.doc_type IS 'document type: sales_order, purchase_order, stock_adjustment, stock_transfer, manufacturing_order, stock_count';
COMMENT ON COLUMN serial_events_effective.doc_id IS 'inFlow''s GUID of the document';
COMMENT ON COLUMN serial_events_effective.doc_number IS 'the document''s number as people know it (order or transfer number)';
COMMENT ON COLUMN serial_events_effective.line_collection IS 'the JSON key the serial came from: lines, pickLines, ...';
COMMENT ON COLUMN serial_events_effective.line_id IS 'inFlow''s GUID of the document line';
COMMENT ON COLUMN serial_events_effective.event_type IS 'the movement: received, picked, shipped, transfer_sent, ... (event_types)';
COMMENT ON COLUMN serial_events_effective.step IS 'order of the event types within one document (event_types.step)';
COMMENT ON COLUMN serial_events_effective.occurred_at IS 'when the movement happened, as the document dates it (NULL when undated)';
COMMENT ON COLUMN serial_events_effective.effective_at IS 'occurred_at, or for an undated event the latest date of its document''s earlier steps; NULL counts as the latest';
COMMENT ON COLUMN serial_events_effective.location_id IS 'inFlow''s GUID of the location';
COMMENT ON COLUMN serial_events_effective.sublocation IS 'the bin or shelf inside the location';
COMMENT ON COLUMN serial_events_effective.quantity_delta IS '+1 into stock, -1 out of stock, 0 neither';
COMMENT ON COLUMN serial_events_effective.doc_status IS 'the document''s status when the event was recorded';
COMMENT ON COLUMN serial_events_effective.observed_at IS 'when audit recorded the row';
COMMENT ON COLUMN serial_events_effective.run_id IS 'the ingest run (ingest_runs.run_id) that wrote the row';
COMMENT ON VIEW serial_genealogy IS 'genealogy_links with product names and SKUs.';
COMMENT ON COLUMN serial_genealogy.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN serial_genealogy.component_serial IS 'the serial built into the unit';
COMMENT ON COLUMN serial_genealogy.component_product_id IS 'the component''s product GUID';
COMMENT ON COLUMN serial_genealogy.component_product_name IS 'the component''s product name';
COMMENT ON COLUMN serial_genealogy.component_product_sku IS 'the component''s product SKU';
COMMENT ON COLUMN serial_genealogy.doc_type IS 'manufacturing_order';
COMMENT ON COLUMN serial_genealogy.doc_id IS 'inFlow''s GUID of the manufacturing order';
COMMENT ON COLUMN serial_genealogy.doc_number IS 'the manufacturing order''s number';
COMMENT ON COLUMN serial_genealogy.order_status IS 'the manufacturing order''s status';
COMMENT ON COLUMN serial_genealogy.finished_serial IS 'the serial of the unit built (NULL when not known)';
COMMENT ON COLUMN serial_genealogy.finished_product_id IS 'the finished product''s GUID';
COMMENT ON COLUMN serial_genealogy.finished_product_name IS 'the finished product''s name';
COMMENT ON COLUMN serial_genealogy.finished_product_sku IS 'the finished product''s SKU';
COMMENT ON COLUMN serial_genealogy.built_at IS 'when the unit was put away; NULL until completed';
COMMENT ON COLUMN serial_genealogy.matched_to IS 'unit, line or order: how closely the link is known';
COMMENT ON TABLE serial_stock IS 'Serial stock as inFlow reports it (products'' inventoryLines), one row per line and snapshot.';
COMMENT ON COLUMN serial_stock.snapshot_id IS 'the stock snapshot (stock_snapshots.snapshot_id)';
COMMENT ON COLUMN serial_stock.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN serial_stock.product_id IS 'inFlow''s GUID of the product';
COMMENT ON COLUMN serial_stock.serial IS 'the serial number on the inventory line';
COMMENT ON COLUMN serial_stock.location_id IS 'inFlow''s GUID of the location';
COMMENT ON COLUMN serial_stock.sublocation IS 'the bin or shelf inside the location';
COMMENT ON COLUMN serial_stock.quantity_on_hand IS '1 when on hand; inFlow can show 0 or negative';
COMMENT ON COLUMN serial_stock.inventory_line_id IS 'inFlow''s id of the inventory line';
COMMENT ON COLUMN serial_stock.observed_at IS 'when the line was read';
COMMENT ON COLUMN serial_stock.run_id IS 'the ingest run (ingest_runs.run_id) that wrote the row';
COMMENT ON VIEW serial_stock_disagreements IS 'Serials whose latest stock snapshot and history disagree.';
COMMENT ON COLUMN serial_stock_disagreements.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN serial_stock_disagreements.kind IS 'how the snapshot and the history disagree';
COMMENT ON COLUMN serial_stock_disagreements.product_id IS 'inFlow''s GUID of the product';
COMMENT ON COLUMN serial_stock_disagreements.serial IS 'the serial number';
COMMENT ON COLUMN serial_stock_disagreements.snapshot_id IS 'the stock snapshot (stock_snapshots.snapshot_id)';
COMMENT ON COLUMN serial_stock_disagreements.snapshot_at IS 'when the snapshot was completed';
COMMENT ON COLUMN serial_stock_disagreements.stock_location_id IS 'where the snapshot has the serial';
COMMENT ON COLUMN serial_stock_disagreements.stock_sublocation IS 'the snapshot''s sublocation';
COMMENT ON COLUMN serial_stock_disagreements.history_status IS 'the status the history gives (serial_current.status)';
COMMENT ON COLUMN serial_stock_disagreements.history_location_id IS 'where the history has the serial';
COMMENT ON COLUMN serial_stock_disagreements.history_sublocation IS 'the history''s sublocation';
COMMENT ON COLUMN serial_stock_disagreements.history_event_type IS 'the history''s latest event type';
COMMENT ON COLUMN serial_stock_disagreements.history_doc_type IS 'that event''s document type';
COMMENT ON COLUMN serial_stock_disagreements.history_doc_id IS 'that event''s document GUID';
COMMENT ON COLUMN serial_stock_disagreements.history_doc_number IS 'that event''s document number';
COMMENT ON COLUMN serial_stock_disagreements.history_since IS 'since when the history has it there';
COMMENT ON VIEW serial_stock_latest IS 'Each company''s latest complete stock snapshot, with product and location names.';
COMMENT ON COLUMN serial_stock_latest.snapshot_id IS 'the stock snapshot (stock_snapshots.snapshot_id)';
COMMENT ON COLUMN serial_stock_latest.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN serial_stock_latest.product_id IS 'inFlow''s GUID of the product';
COMMENT ON COLUMN serial_stock_latest.serial IS 'the serial number';
COMMENT ON COLUMN serial_stock_latest.location_id IS 'inFlow''s GUID of the location';
COMMENT ON COLUMN serial_stock_latest.sublocation IS 'the bin or shelf inside the location';
COMMENT ON COLUMN serial_stock_latest.quantity_on_hand IS '1 when on hand; inFlow can show 0 or negative';
COMMENT ON COLUMN serial_stock_latest.snapshot_at IS 'when the snapshot was completed';
COMMENT ON COLUMN serial_stock_latest.product_name IS 'the product''s name (NULL until the products are fetched)';
COMMENT ON COLUMN serial_stock_latest.location_name IS 'the location''s name (NULL until the locations are fetched)';
COMMENT ON VIEW serial_timeline IS 'Current serial events with product and location names, in order.';
COMMENT ON COLUMN serial_timeline.event_id IS 'the event''s id (serial_events.event_id)';
COMMENT ON COLUMN serial_timeline.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN serial_timeline.serial IS 'the serial number';
COMMENT ON COLUMN serial_timeline.product_id IS 'inFlow''s GUID of the product';
COMMENT ON COLUMN serial_timeline.product_name IS 'the product''s name (NULL until the products are fetched)';
COMMENT ON COLUMN serial_timeline.product_sku IS 'the product''s SKU';
COMMENT ON COLUMN serial_timeline.doc_type IS 'document type: sales_order, purchase_order, stock_adjustment, stock_transfer, manufacturing_order, stock_count';
COMMENT ON COLUMN serial_timeline.doc_id IS 'inFlow''s GUID of the document';
COMMENT ON COLUMN serial_timeline.doc_number IS 'the document''s number as people know it (order or transfer number)';
COMMENT ON COLUMN serial_timeline.line_collection IS 'the JSON key the serial came from: lines, pickLines, ...';
COMMENT ON COLUMN serial_timeline.line_id IS 'inFlow''s GUID of the document line';
COMMENT ON COLUMN serial_timeline.event_type IS 'the movement: received, picked, shipped, transfer_sent, ... (event_types)';
COMMENT ON COLUMN serial_timeline.step IS 'order of the event types within one document (event_types.step)';
COMMENT ON COLUMN serial_timeline.occurred_at IS 'when the movement happened, as the document dates it (NULL when undated)';
COMMENT ON COLUMN serial_timeline.location_id IS 'inFlow''s GUID of the location';
COMMENT ON COLUMN serial_timeline.location_name IS 'the location''s name (NULL until the locations are fetched)';
COMMENT ON COLUMN serial_timeline.sublocation IS 'the bin or shelf inside the location';
COMMENT ON COLUMN serial_timeline.quantity_delta IS '+1 into stock, -1 out of stock, 0 neither';
COMMENT ON COLUMN serial_timeline.doc_status IS 'the document''s status when the event was recorded';
COMMENT ON COLUMN serial_timeline.observed_at IS 'when audit recorded the row';
COMMENT ON COLUMN serial_timeline.run_id IS 'the ingest run (ingest_runs.run_id) that wrote the row';
COMMENT ON TABLE stock_snapshots IS 'Stock snapshots: when each was taken, and whether it completed.';
COMMENT ON COLUMN stock_snapshots.snapshot_id IS 'the snapshot''s id';
COMMENT ON COLUMN stock_snapshots.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN stock_snapshots.run_id IS 'the ingest run (ingest_runs.run_id) that wrote the row';
COMMENT ON COLUMN stock_snapshots.started_at IS 'when the snapshot started';
COMMENT ON COLUMN stock_snapshots.completed_at IS 'NULL until its last page is in: only complete ones count';
COMMENT ON COLUMN stock_snapshots.products IS 'products read';
COMMENT ON COLUMN stock_snapshots.serial_lines IS 'inventory lines with a serial stored';
COMMENT ON TABLE sync_state IS 'Where each company''s stream stands: the unfinished walk and the last complete one.';
COMMENT ON COLUMN sync_state.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN sync_state.stream IS 'sales-orders, purchase-orders, ...';
COMMENT ON COLUMN sync_state.since IS 'lower date bound (YYYY-MM-DD) kept from --since';
COMMENT ON COLUMN sync_state.walk_id IS 'run that started the unfinished walk; NULL if none';
COMMENT ON COLUMN sync_state.walk_kind IS 'complete or window';
COMMENT ON COLUMN sync_state.walk_from IS 'date bound of that walk';
COMMENT ON COLUMN sync_state.walk_paging IS 'keyset or skip';
COMMENT ON COLUMN sync_state.walk_position IS 'last id returned (keyset) or rows consumed (skip)';
COMMENT ON COLUMN sync_state.walk_started_at IS 'when that walk started';
COMMENT ON COLUMN sync_state.last_complete_at IS 'when the last complete walk finished';
COMMENT ON COLUMN sync_state.last_complete_run_id IS 'the run of that walk';
COMMENT ON COLUMN sync_state.last_window_at IS 'when the last --window walk finished';
COMMENT ON COLUMN sync_state.last_window_run_id IS 'the run of that walk';
COMMENT ON COLUMN sync_state.walk_seen IS 'documents the unfinished walk has returned so far';
COMMENT ON COLUMN sync_state.walk_list_count IS 'X-listCount the unfinished walk was told';
COMMENT ON COLUMN sync_state.walk_unproven IS 'what of the walk''s end is not yet proven (JSON)';
COMMENT ON TABLE vendors IS 'The company''s vendors, so that output shows names: fetched when an order names one not stored.';
COMMENT ON COLUMN vendors.company_id IS 'inFlow company GUID';
COMMENT ON COLUMN vendors.vendor_id IS 'inFlow''s vendorId';
COMMENT ON COLUMN vendors.name IS 'the vendor''s name';
COMMENT ON COLUMN vendors.is_active IS 'whether inFlow shows it as active';
COMMENT ON COLUMN vendors.row_version IS 'inFlow''s `timestamp` of it';
COMMENT ON COLUMN vendors.updated_at IS 'when audit last stored it';
