-- The transactional outbox. Feed order is (tx_id, seq): tx_id is the writing transaction's
-- id, and only rows whose tx_id is below the oldest running transaction are served, so the
-- visible order never changes (see src/feed/mod.rs).
CREATE TABLE outbox (
    id         uuid PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants (id),
    tx_id      xid8 NOT NULL DEFAULT pg_current_xact_id(),
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    event_type text NOT NULL,
    entity     text NOT NULL,
    entity_id  text NOT NULL,
    change     text NOT NULL CHECK (change IN ('Created', 'Updated', 'Deleted')),
    created    timestamptz NOT NULL,
    -- The envelope exactly as served (text, not jsonb: jsonb would rewrite 1e100).
    envelope   text NOT NULL
);
CREATE INDEX outbox_tenant_position ON outbox (tenant_id, tx_id, seq);
CREATE INDEX outbox_tenant_type_position ON outbox (tenant_id, event_type, tx_id, seq);
CREATE INDEX outbox_position ON outbox (tx_id, seq);

-- A wake-up for long-polls and relays; NOTIFY is delivered at commit and only says "look".
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eventgate_outbox', NEW.tenant_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_notify();

-- Feed positions below this one may have been purged: older cursors get 410 Gone.
CREATE TABLE outbox_purged (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    tx_id     xid8 NOT NULL,
    seq       bigint NOT NULL
);

-- The state the catalogue events describe (the read model).
CREATE TABLE portfolios (
    tenant_id        text NOT NULL REFERENCES tenants (id),
    id               text NOT NULL,
    external_id      text NOT NULL,
    owned_by_user_id text NOT NULL,
    status           text,
    divest_amount    text,
    divest_currency  text,
    created          timestamptz NOT NULL DEFAULT now(),
    updated          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE portfolio_funding (
    tenant_id    text NOT NULL,
    portfolio_id text NOT NULL,
    currency     text NOT NULL,
    total        numeric NOT NULL,
    PRIMARY KEY (tenant_id, portfolio_id, currency),
    FOREIGN KEY (tenant_id, portfolio_id) REFERENCES portfolios (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE optimizations (
    tenant_id      text NOT NULL,
    id             text NOT NULL,
    portfolio_id   text NOT NULL,
    external_id    text NOT NULL,
    status         text NOT NULL,
    is_recommended boolean NOT NULL,
    owner_choice   text,
    created        timestamptz NOT NULL DEFAULT now(),
    updated        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, portfolio_id) REFERENCES portfolios (tenant_id, id) ON DELETE CASCADE
);

-- Inbound deposits.
CREATE TABLE deposits (
    tenant_id    text NOT NULL,
    id           uuid NOT NULL,
    portfolio_id text NOT NULL,
    amount       numeric NOT NULL CHECK (amount > 0),
    currency     text NOT NULL,
    -- The portfolios.funding event; no FK, the outbox is purged after its retention.
    event_id     uuid NOT NULL,
    created      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Idempotency keys: claimed, used and answered in the request's own transaction, so a
-- key never exists without its effect nor an effect without its key.
CREATE TABLE idempotency_keys (
    tenant_id       text NOT NULL,
    scope           text NOT NULL,
    key             text NOT NULL,
    fingerprint     bytea NOT NULL,
    -- Filled in by the same transaction that claims the key, before it commits.
    response_status smallint NOT NULL DEFAULT 0,
    response_body   bytea NOT NULL DEFAULT '',
    location        text,
    created         timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
