-- Snapshots of a tenant's read models (POST /snapshots): each one's items, copied from one
-- database snapshot, and the feed cursor that follows exactly that snapshot. Kept until
-- expires_at, then purged (the items with them).
CREATE TABLE snapshots (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The feed follows the snapshot after (cursor_tx, max): see store/snapshots.rs. Null
    -- while the snapshot is being taken.
    cursor_tx     xid8,
    portfolios    bigint NOT NULL DEFAULT 0,
    optimizations bigint NOT NULL DEFAULT 0,
    deposits      bigint NOT NULL DEFAULT 0,
    -- False while its items are being copied (and for good if that failed).
    complete      boolean NOT NULL DEFAULT false,
    created       timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX snapshots_tenant ON snapshots (tenant_id, expires_at);
CREATE INDEX snapshots_expiry ON snapshots (expires_at);

CREATE TABLE snapshot_items (
    snapshot_id uuid NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    model       text NOT NULL CHECK (model IN ('portfolios', 'optimizations', 'deposits')),
    key         text NOT NULL,
    -- The item exactly as GET /portfolios/{id} (and the like) showed it then.
    body        text NOT NULL,
    PRIMARY KEY (snapshot_id, model, key)
);
