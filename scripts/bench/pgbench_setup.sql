-- Tenant `pgb` and its 64 portfolios for the pgbench ceiling run.
INSERT INTO tenants (id, name) VALUES ('pgb', 'pgbench') ON CONFLICT DO NOTHING;
INSERT INTO portfolios (tenant_id, id, external_id, owned_by_user_id)
  SELECT 'pgb', 'P' || i, 'P' || i, 'U1' FROM generate_series(0, 63) AS i ON CONFLICT DO NOTHING;
