-- API keys may expire: an expired key is refused like a revoked one.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;

-- Every administrative action, written in the transaction that makes the change, so a
-- change and its record commit or roll back together. Rows are ordered like the feed, by
-- (transaction id, seq), and read only below the snapshot's xmin, so a follower of the
-- log never skips a row that commits late. No foreign keys: the log outlives what it
-- names (a deleted destination, a revoked key). Nothing secret is ever written here.
CREATE TABLE audit_log (
    tx_id        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    at           timestamptz NOT NULL DEFAULT now(),
    -- The key that acted; NULL for the operator's CLI and the server itself.
    actor_key_id uuid,
    actor_role   text NOT NULL CHECK (actor_role IN ('client', 'platform', 'operator', 'system')),
    tenant_id    text,
    action       text NOT NULL,
    target       text,
    request_id   text,
    changes      jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tx_id, seq)
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, tx_id, seq);
CREATE INDEX audit_log_at ON audit_log (at);
