-- Delivery health events (destinations.failing / recovered / disabled). A destination that
-- was reported failing keeps, here, the failing_since it was reported with, so its recovery
-- is reported once and says since when it had failed.
ALTER TABLE destinations ADD COLUMN failing_reported_since timestamptz;

-- The platform's feed of delivery health events across tenants reads only these rows.
CREATE INDEX outbox_delivery_health ON outbox (tx_id, seq)
    WHERE event_type LIKE 'destinations.%';
