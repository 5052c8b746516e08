-- Tenants (the b2b clients) and the API keys that act for them or for the platform.
CREATE TABLE tenants (
    id      text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created timestamptz NOT NULL DEFAULT now()
);

-- Only a SHA-256 of each key is kept: keys are 256-bit random secrets, so a fast hash is
-- enough to make a leaked table useless, and it lets us look a key up by an index.
CREATE TABLE api_keys (
    id         uuid PRIMARY KEY,
    key_hash   bytea NOT NULL UNIQUE,
    role       text NOT NULL CHECK (role IN ('client', 'platform')),
    tenant_id  text REFERENCES tenants (id),
    created    timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT api_keys_client_has_tenant CHECK ((role = 'client') = (tenant_id IS NOT NULL))
);
