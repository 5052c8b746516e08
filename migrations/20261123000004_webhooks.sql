-- Webhook destinations: signing secrets (the previous one keeps signing during a rotation),
-- a queue of deliveries with their retry state, and every attempt made.
ALTER TABLE destinations DROP CONSTRAINT destinations_kind_check;
ALTER TABLE destinations ADD CONSTRAINT destinations_kind_check
    CHECK (kind IN ('amqp', 'mqtt', 'webhook'));
ALTER TABLE destinations
    ADD COLUMN secret                text,
    ADD COLUMN previous_secret       text,
    ADD COLUMN previous_secret_until timestamptz,
    ADD COLUMN disabled_reason       text,
    ADD COLUMN last_heartbeat_at     timestamptz;

CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination_id  uuid NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    -- webhook-id: the event id, stable across retries (a fresh id for lifecycle messages).
    message_id      text NOT NULL,
    -- NULL for lifecycle and heartbeat messages.
    event_id        uuid,
    entity          text,
    entity_id       text,
    change          text,
    payload         text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created         timestamptz NOT NULL DEFAULT now(),
    updated         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX webhook_deliveries_message ON webhook_deliveries (destination_id, message_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (destination_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_coalesce ON webhook_deliveries (destination_id, entity, entity_id)
    WHERE status = 'pending' AND change = 'Updated';

CREATE TABLE webhook_attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination_id   uuid NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    message_id       text NOT NULL,
    attempted_at     timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    response_status  integer,
    duration_ms      integer NOT NULL,
    error            text,
    response_excerpt text
);
CREATE INDEX webhook_attempts_destination ON webhook_attempts (destination_id, id);
