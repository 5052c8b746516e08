-- Ordered webhooks ("ordering": "entity") look for an earlier unfinished delivery of the
-- same entity before sending one; this index answers that per destination and entity.
CREATE INDEX webhook_deliveries_entity_order
    ON webhook_deliveries (destination_id, entity, entity_id, id)
    WHERE status IN ('pending', 'failed');
