-- The W3C trace context an event carries from the request that published it to each
-- delivery of it (telemetry::trace_context). NULL when the event carries none. Adding
-- nullable columns without a default rewrites nothing.
ALTER TABLE outbox
    ADD COLUMN trace_parent text,
    ADD COLUMN trace_state text;

ALTER TABLE webhook_deliveries
    ADD COLUMN trace_parent text,
    ADD COLUMN trace_state text;
