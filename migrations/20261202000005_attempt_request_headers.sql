-- The headers each webhook attempt sent (credentials as ***), so an integrator can debug
-- their signature verifier from the attempt log. Older attempts have none.
ALTER TABLE webhook_attempts ADD COLUMN request_headers jsonb;

-- GET /events/{id}/deliveries finds one event's attempts at each destination.
CREATE INDEX webhook_attempts_message ON webhook_attempts (destination_id, message_id);
