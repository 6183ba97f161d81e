-- Documents that appeared or changed in inFlow since a moment, as `audit ingest` noticed them:
-- new ones, edits, cancellations, deletions, and how many events each change added or retracted.
-- Run: audit sql --query changed_since --param since=2025-07-01
SELECT observed_at, doc_type, doc_number, change, events_inserted, events_retracted, run_id
FROM (
    SELECT c.observed_at, c.doc_type, c.doc_number, c.change, c.events_inserted, c.events_retracted, c.run_id
    FROM document_changes c
    WHERE c.observed_at >= :since
    UNION ALL
    SELECT d.first_seen_at, d.doc_type, d.doc_number, 'new', NULL, NULL, d.first_run_id
    FROM documents d
    WHERE d.first_seen_at >= :since
) changes
ORDER BY observed_at, doc_type, doc_number;
