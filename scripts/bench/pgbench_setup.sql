-- Tenant `pgb` and its 64 portfolios for the pgbench ceiling run.
INSERT INTO tenants (id, name) VALUES ('pgb', 'pgbench') ON CONFLICT DO NOTHING;
INSERT INTO portfolios (tenant_id, id, external_id, owned_by_user_id)
  SELECT 'pgb', 'P' || i, 'P' || i, 'U1' FROM generate_series(0, 63) AS i ON CONFLICT DO NOTHING;
-- The one key the replay ceiling (replay_read.sql) reads, answered as a deposit would be.
INSERT INTO idempotency_keys (tenant_id, scope, key, fingerprint, expires_at, response_status, response_body)
  VALUES ('pgb', 'deposits', 'the-one-key', '\x0102', now() + interval '1 day', 201,
          convert_to('{"id":"0190d3a4-0000-7000-8000-000000000000","portfolio":"P0","amount":"1","currency":"EUR"}', 'UTF8'))
  ON CONFLICT DO NOTHING;
