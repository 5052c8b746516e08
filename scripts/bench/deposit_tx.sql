-- The SQL of one deposit exactly as eventgate runs it (src/http/deposits.rs), for pgbench:
-- the look for a committed answer to its Idempotency-Key (the API key itself comes from the
-- server's key cache), then one transaction: lock wait bound, the tenant's writers' lock and
-- the entity lock, idempotency claim,
-- portfolio checks, funding, outbox event, deposit, stored response.
\set p random(0, 63)
\set k random(1, 1000000000000)
SELECT fingerprint, response_status, response_body, location FROM idempotency_keys
  WHERE tenant_id = 'pgb' AND scope = 'deposits' AND key = :client_id || '-' || :k
    AND expires_at > now() AND response_status <> 0;
BEGIN;
SELECT set_config('lock_timeout', '5000ms', true);
SELECT 1 FROM (SELECT pg_advisory_xact_lock_shared(hashtextextended(w, 0)) FROM unnest(ARRAY['eventgate/outbox-writers/pgb']) AS w) AS writers
  UNION ALL
  SELECT 1 FROM (SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(key, 0) AS k FROM unnest(ARRAY['pgb/portfolio/P' || :p]) AS key ORDER BY 1) AS keys) AS entities;
INSERT INTO idempotency_keys (tenant_id, scope, key, fingerprint, expires_at)
  VALUES ('pgb', 'deposits', :client_id || '-' || :k, '\x0102', now() + make_interval(secs => 86400))
  ON CONFLICT (tenant_id, scope, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, expires_at = EXCLUDED.expires_at, created = now(),
        response_status = 0, response_body = '', location = NULL
    WHERE idempotency_keys.expires_at <= now()
  RETURNING true;
SELECT status FROM portfolios WHERE tenant_id = 'pgb' AND id = 'P' || :p;
SELECT status FROM portfolios WHERE tenant_id = 'pgb' AND id = 'P' || :p;
INSERT INTO portfolio_funding (tenant_id, portfolio_id, currency, total) VALUES ('pgb', 'P' || :p, 'EUR', 10.50)
  ON CONFLICT (tenant_id, portfolio_id, currency) DO UPDATE SET total = portfolio_funding.total + EXCLUDED.total;
UPDATE portfolios SET updated = now() WHERE tenant_id = 'pgb' AND id = 'P' || :p;
INSERT INTO outbox (id, tenant_id, event_type, entity, entity_id, change, created, envelope)
  VALUES (gen_random_uuid(), 'pgb', 'portfolios.funding', 'Portfolio', 'P' || :p, 'Updated', now(),
          '{"id":"0190d3a4-0000-7000-8000-000000000000","created":"2026-11-23T00:00:00.000000Z","version":"1.0.0","subject":"portfolios","action":"funding","data":{"id":"P1","value":10.50,"currency":"EUR"}}')
  RETURNING tx_id, seq;
INSERT INTO deposits (tenant_id, id, portfolio_id, amount, currency, event_id, created, idempotency_key)
  VALUES ('pgb', gen_random_uuid(), 'P' || :p, 10.50, 'EUR', gen_random_uuid(), now(), :client_id || '-' || :k);
UPDATE idempotency_keys SET response_status = 201, response_body = '\x7b7d', location = '/deposits/x'
  WHERE tenant_id = 'pgb' AND scope = 'deposits' AND key = :client_id || '-' || :k;
COMMIT;
