-- Portfolio creations join the set-based path (migration 20261203000012): every
-- long-poll wake-up of the benchmarks, and a platform creating a client's portfolios, is a
-- batch of creations, each of which the PL/pgSQL loop made in a subtransaction of its own,
-- with its checks and its insert as separate statements.
--
-- A creation is plain when its portfolio does not exist before the batch and no other
-- write of the batch names it: then no earlier write of the batch can change what its
-- check reads. A creation of a portfolio that exists goes one by one, which refuses it
-- (409) alone; so does a batch that creates a portfolio and updates, funds or removes it
-- (the other write is not plain either, its portfolio missing before the batch). The
-- insert claims each portfolio with ON CONFLICT DO NOTHING and counts what it claimed: a
-- creation that committed after the check (none can while the batch holds the entity
-- lock, but the check and the insert are separate statements) undoes the batch and makes
-- its writes one by one (EGFB0), as a taken key does.
--
-- The function below is that of migration 20261203000013 with only that changed.

CREATE OR REPLACE FUNCTION eventgate_make_plain_writes(p_writes jsonb, p_answered boolean[])
RETURNS SETOF eventgate_made
LANGUAGE plpgsql AS $$
DECLARE
    v_sequence regclass := pg_get_serial_sequence('outbox', 'seq')::regclass;
    v_keyed bigint;
    v_claimed bigint;
    v_creations bigint;
    v_created bigint;
    v_made eventgate_made[];
BEGIN
    IF EXISTS (
        WITH w AS (
            SELECT x.n, x.w, x.w->'events'->0 AS e, x.w->'deposit' AS d,
                   jsonb_typeof(x.w->'deposit') = 'object' AS is_deposit
              FROM jsonb_array_elements(p_writes) WITH ORDINALITY AS x(w, n)
             WHERE NOT p_answered[x.n]
        )
        SELECT 1
          FROM w
          LEFT JOIN LATERAL (
              SELECT p.id, p.status FROM portfolios p
               WHERE p.tenant_id = w.e->>'tenant' AND p.id = w.e->>'portfolio'
               LIMIT 1) p ON true
          LEFT JOIN LATERAL (
              SELECT true AS known FROM tenants t
               WHERE (w.e->>'check_tenant')::boolean AND t.id = w.e->>'tenant'
               LIMIT 1) t ON true
         WHERE jsonb_array_length(w.w->'events') <> 1
            OR coalesce(w.e->>'rule', '') NOT IN
                   ('fund_portfolio', 'portfolio_status', 'divest_amount', 'create_portfolio',
                    'none')
            OR ((w.e->>'check_tenant')::boolean AND t.known IS NULL)
            OR (w.e->>'rule' NOT IN ('none', 'create_portfolio') AND p.id IS NULL)
            OR (w.e->>'rule' = 'create_portfolio'
                AND (p.id IS NOT NULL
                     OR EXISTS (SELECT 1 FROM w s
                                 WHERE s.n <> w.n
                                   AND s.e->>'tenant' = w.e->>'tenant'
                                   AND s.e->>'portfolio' = w.e->>'portfolio')))
            OR (w.is_deposit
                AND (w.e->>'rule' <> 'fund_portfolio'
                     OR w.w->>'body_tail' IS NULL
                     OR w.d->>'tenant' IS DISTINCT FROM w.e->>'tenant'
                     OR w.d->>'portfolio' IS DISTINCT FROM w.e->>'portfolio'
                     OR p.status = 'INACTIVE'
                     OR EXISTS (SELECT 1 FROM w s
                                 WHERE s.e->>'rule' = 'portfolio_status'
                                   AND s.e->>'tenant' = w.e->>'tenant'
                                   AND s.e->>'portfolio' = w.e->>'portfolio')))) THEN
        RETURN;
    END IF;

    -- Each write's event position and answer first (a deposit's answer holds the
    -- position), then every row they write, in one statement.
    WITH a AS MATERIALIZED (
        SELECT w.i, w.w, w.w->'events'->0 AS e, w.w->'events'->0->>'rule' AS rule,
               w.w->'deposit' AS d, w.seq,
               convert_to(w.w->>'body_head'
                          || CASE WHEN w.w->>'body_tail' IS NULL THEN ''
                                  ELSE eventgate_cursor(pg_current_xact_id(), w.seq)
                                       || (w.w->>'body_tail') END, 'UTF8') AS body
          FROM (SELECT x.n - 1 AS i, x.w, nextval(v_sequence) AS seq
                  FROM jsonb_array_elements(p_writes) WITH ORDINALITY AS x(w, n)
                 WHERE NOT p_answered[x.n]
                 ORDER BY x.n) AS w
    ), claimed AS (
        INSERT INTO idempotency_keys AS k (tenant_id, scope, key, fingerprint, expires_at,
                                           response_status, response_body, location)
        SELECT a.w->>'owner', a.w->>'scope', a.w->>'key', decode(a.w->>'fingerprint', 'hex'),
               now() + make_interval(secs => (a.w->>'ttl_secs')::float8),
               (a.w->>'status')::smallint, a.body, a.w->>'location'
          FROM a
         WHERE a.w->>'key' IS NOT NULL
        ON CONFLICT (tenant_id, scope, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, expires_at = EXCLUDED.expires_at,
                created = now(), response_status = EXCLUDED.response_status,
                response_body = EXCLUDED.response_body, location = EXCLUDED.location
            WHERE k.expires_at <= now()
        RETURNING 1
    ), appended AS (
        INSERT INTO outbox (id, tenant_id, seq, event_type, entity, entity_id, change,
                            created, envelope, trace_parent, trace_state)
        OVERRIDING SYSTEM VALUE
        SELECT (a.e->>'id')::uuid, a.e->>'tenant', a.seq, a.e->>'event_type', a.e->>'entity',
               a.e->>'entity_id', coalesce(a.e->>'change', 'Updated'),
               (a.e->>'created')::timestamptz, a.e->>'envelope', a.e->>'trace_parent',
               a.e->>'trace_state'
          FROM a
        RETURNING 1
    ), created AS (
        INSERT INTO portfolios (tenant_id, id, external_id, owned_by_user_id)
        SELECT a.e->>'tenant', a.e->>'portfolio', a.e->>'external_id', a.e->>'owned_by'
          FROM a
         WHERE a.rule = 'create_portfolio'
        ON CONFLICT DO NOTHING
        RETURNING 1
    ), stored AS (
        INSERT INTO deposits (tenant_id, id, portfolio_id, amount, currency, event_id,
                              created, idempotency_key)
        SELECT a.d->>'tenant', (a.d->>'id')::uuid, a.d->>'portfolio',
               (a.d->>'amount')::numeric, a.d->>'currency', (a.d->>'event_id')::uuid,
               (a.d->>'created')::timestamptz, a.d->>'idempotency_key'
          FROM a
         WHERE jsonb_typeof(a.d) = 'object'
        RETURNING 1
    ), funded AS (
        INSERT INTO portfolio_funding AS f (tenant_id, portfolio_id, currency, total)
        SELECT a.e->>'tenant', a.e->>'portfolio', a.e->>'currency',
               sum((a.e->>'amount')::numeric)
          FROM a
         WHERE a.rule = 'fund_portfolio'
         GROUP BY 1, 2, 3
        ON CONFLICT (tenant_id, portfolio_id, currency)
        DO UPDATE SET total = f.total + EXCLUDED.total
        RETURNING 1
    ), changed AS (
        -- One row per portfolio: one statement may change a row only once.
        SELECT a.e->>'tenant' AS tenant, a.e->>'portfolio' AS portfolio,
               bool_or(a.rule = 'portfolio_status') AS has_status,
               (array_agg(a.e->>'value' ORDER BY a.i DESC)
                    FILTER (WHERE a.rule = 'portfolio_status'))[1] AS status,
               bool_or(a.rule = 'divest_amount') AS has_divest,
               (array_agg(a.e->>'divest_amount' ORDER BY a.i DESC)
                    FILTER (WHERE a.rule = 'divest_amount'))[1] AS divest_amount,
               (array_agg(a.e->>'currency' ORDER BY a.i DESC)
                    FILTER (WHERE a.rule = 'divest_amount'))[1] AS divest_currency,
               bool_or(a.rule IN ('portfolio_status', 'divest_amount')) AS restated,
               (array_agg(a.e->>'external_id' ORDER BY a.i DESC)
                    FILTER (WHERE a.rule IN ('portfolio_status', 'divest_amount')))[1]
                   AS external_id
          FROM a
         WHERE a.rule IN ('fund_portfolio', 'portfolio_status', 'divest_amount')
         GROUP BY 1, 2
    ), touched AS (
        UPDATE portfolios p
           SET status = CASE WHEN c.has_status THEN c.status ELSE p.status END,
               divest_amount = CASE WHEN c.has_divest THEN c.divest_amount
                                    ELSE p.divest_amount END,
               divest_currency = CASE WHEN c.has_divest THEN c.divest_currency
                                      ELSE p.divest_currency END,
               external_id = CASE WHEN c.restated THEN c.external_id ELSE p.external_id END,
               updated = now()
          FROM changed c
         WHERE p.tenant_id = c.tenant AND p.id = c.portfolio
           AND (c.restated OR p.updated <> now())
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM a WHERE a.w->>'key' IS NOT NULL),
           (SELECT count(*) FROM claimed),
           (SELECT count(*) FROM a WHERE a.rule = 'create_portfolio'),
           (SELECT count(*) FROM created),
           array_agg(ROW(a.i, decode(a.w->>'fingerprint', 'hex'), (a.w->>'status')::smallint,
                         a.body, a.w->>'location')::eventgate_made ORDER BY a.i)
      INTO v_keyed, v_claimed, v_creations, v_created, v_made
      FROM a;

    -- A key not claimed is held by a request still running, or holds an answer that
    -- committed after the batch looked: eventgate_apply_write knows how to answer each.
    IF v_claimed < v_keyed THEN
        RAISE EXCEPTION USING ERRCODE = 'EGFB0',
            MESSAGE = 'a key of the batch is taken; making its writes one by one';
    END IF;
    -- A portfolio created since the check: the loop refuses its creation alone.
    IF v_created < v_creations THEN
        RAISE EXCEPTION USING ERRCODE = 'EGFB0',
            MESSAGE = 'a portfolio of the batch exists; making its writes one by one';
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_made);
END
$$;
