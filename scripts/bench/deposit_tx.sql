-- One deposit as eventgate makes it (src/http/deposits.rs, store::writes): one call of
-- eventgate_write, its own transaction, announced after commit (the server's announcer
-- then sends one NOTIFY for many writes). The API key comes from the server's key cache.
-- This is a batch of one: the server's write batcher puts the deposits that arrive
-- together in one call, so it can pass this ceiling. The deposit goes to one of
-- `-D portfolios=N` portfolios (64, or 1 for the hot-portfolio ceiling).
\set p random(0, :portfolios - 1)
\set k random(1, 1000000000000)
SELECT o_status FROM eventgate_write(jsonb_build_array(jsonb_build_object(
  'owner', 'pgb', 'scope', 'deposits', 'key', :client_id || '-' || :k,
  'fingerprint', '0102', 'ttl_secs', 86400,
  'writer_locks', jsonb_build_array('eventgate/outbox-writers/pgb'),
  'entity_locks', jsonb_build_array('pgb/portfolio/P' || :p),
  'events', jsonb_build_array(jsonb_build_object(
    'tenant', 'pgb', 'check_tenant', false, 'event_type', 'portfolios.funding',
    'entity', 'Portfolio', 'entity_id', 'P' || :p, 'change', 'Updated',
    'id', gen_random_uuid(), 'created', now(),
    'envelope', '{"id":"0190d3a4-0000-7000-8000-000000000000","created":"2026-11-23T00:00:00.000000Z","version":"1.0.0","subject":"portfolios","action":"funding","data":{"id":"P1","value":10.50,"currency":"EUR"}}',
    'rule', 'fund_portfolio', 'portfolio', 'P' || :p, 'amount', '10.50', 'currency', 'EUR')),
  'deposit', jsonb_build_object('tenant', 'pgb', 'id', gen_random_uuid(), 'portfolio', 'P' || :p,
    'amount', '10.50', 'currency', 'EUR', 'event_id', gen_random_uuid(), 'created', now(),
    'idempotency_key', :client_id || '-' || :k),
  'status', 201, 'body_head', '{"id":"0190d3a4-0000-7000-8000-000000000000","funding_event":{"cursor":"',
  'body_tail', '"}}', 'location', '/deposits/x')), '5000ms', true);
