-- Where a tenant's events are pushed (message buses now, webhooks later), and how far each
-- destination has been confirmed in feed order.
CREATE TABLE destinations (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id),
    kind            text NOT NULL CHECK (kind IN ('amqp', 'mqtt')),
    -- Kind-specific settings, including the broker URL with its credentials (never
    -- returned or logged as is).
    config          jsonb NOT NULL,
    types           text[] NOT NULL DEFAULT '{}',
    enabled         boolean NOT NULL DEFAULT true,
    -- Everything at or before this feed position has been confirmed by the broker.
    delivered_tx    xid8 NOT NULL,
    delivered_seq   bigint NOT NULL,
    last_error      text,
    last_error_at   timestamptz,
    failing_since   timestamptz,
    last_success_at timestamptz,
    created         timestamptz NOT NULL DEFAULT now(),
    updated         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX destinations_tenant ON destinations (tenant_id, created);
