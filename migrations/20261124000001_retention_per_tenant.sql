-- Retention is per tenant: each tenant's feed is purged up to its own bound, so a quiet
-- destination of one tenant never holds back another's. Cursors of a tenant below its
-- watermark get 410 Gone; a destination below it has a gap it is told about.
CREATE TABLE outbox_watermarks (
    tenant_id text PRIMARY KEY REFERENCES tenants (id),
    tx_id     xid8 NOT NULL,
    seq       bigint NOT NULL
);
-- The old, global watermark applied to every tenant.
INSERT INTO outbox_watermarks (tenant_id, tx_id, seq)
SELECT t.id, p.tx_id, p.seq FROM tenants t CROSS JOIN outbox_purged p;
DROP TABLE outbox_purged;

-- Finds each tenant's newest event past retention with one index probe, instead of a scan
-- of the whole outbox.
CREATE INDEX outbox_tenant_created ON outbox (tenant_id, created);

-- Webhook history is purged past its retention, oldest first.
CREATE INDEX webhook_attempts_attempted ON webhook_attempts (attempted_at);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated)
    WHERE status <> 'pending';

-- The platform key given at start-up (EVENTGATE_PLATFORM_KEY). Only one is valid: starting
-- with a new value revokes the previous one. Keys made with the API or the CLI are not
-- affected.
ALTER TABLE api_keys ADD COLUMN configured boolean NOT NULL DEFAULT false;
-- A destination's failed deliveries are counted for its status.
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (destination_id)
    WHERE status = 'failed';
