-- A batch's look-ups by key are index probes, one per write, whatever the table's size
-- or statistics. PL/pgSQL keeps a statement's plan for the connection's life (until the
-- table is next analyzed), and a plan made while a table is small joins the batch's
-- writes to it by hashing the whole table: a batch's replay look-up read every row of
-- `idempotency_keys`, and the check that a batch is plain every row of `portfolios`
-- (and of `tenants`), on every write, until autovacuum next analyzed them. Measured on a
-- new database (auto_explain): a publish of one portfolio creation took 6-8 ms in
-- PostgreSQL at 23,000 portfolios, most of it that scan. A lateral subquery with LIMIT 1
-- cannot be turned into such a join; (tenant_id, scope, key) and (tenant_id, id) are
-- unique, so the limit drops nothing.
--
-- The functions below are those of migration 20261203000012 with only those look-ups
-- changed.

CREATE OR REPLACE FUNCTION eventgate_make_plain_writes(p_writes jsonb, p_answered boolean[])
RETURNS SETOF eventgate_made
LANGUAGE plpgsql AS $$
DECLARE
    v_sequence regclass := pg_get_serial_sequence('outbox', 'seq')::regclass;
    v_keyed bigint;
    v_claimed bigint;
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
                   ('fund_portfolio', 'portfolio_status', 'divest_amount', 'none')
            OR ((w.e->>'check_tenant')::boolean AND t.known IS NULL)
            OR (w.e->>'rule' <> 'none' AND p.id IS NULL)
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
           array_agg(ROW(a.i, decode(a.w->>'fingerprint', 'hex'), (a.w->>'status')::smallint,
                         a.body, a.w->>'location')::eventgate_made ORDER BY a.i)
      INTO v_keyed, v_claimed, v_made
      FROM a;

    -- A key not claimed is held by a request still running, or holds an answer that
    -- committed after the batch looked: eventgate_apply_write knows how to answer each.
    IF v_claimed < v_keyed THEN
        RAISE EXCEPTION USING ERRCODE = 'EGFB0',
            MESSAGE = 'a key of the batch is taken; making its writes one by one';
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_made);
END
$$;

CREATE OR REPLACE FUNCTION eventgate_write(p_writes jsonb, p_lock_wait text, p_announce_later boolean)
RETURNS TABLE (o_index int, o_replayed boolean, o_fingerprint bytea, o_status smallint,
               o_body bytea, o_location text, o_refusal text, o_detail text, o_event int)
LANGUAGE plpgsql AS $$
DECLARE
    v_count int := jsonb_array_length(p_writes);
    v_answered boolean[] := array_fill(false, ARRAY[v_count]);
    w jsonb;
    i int;
    v_lock text;
    v_hash bigint;
    v_refusal text;
    v_detail text;
    v_hint text;
    v_delta jsonb;
    v_funding jsonb := '[]'::jsonb;
    v_made eventgate_made[];
    m eventgate_made;
BEGIN
    -- 1. Committed answers are final (a committed key row always holds its answer).
    FOR i, o_fingerprint, o_status, o_body, o_location IN
        SELECT x.n - 1, k.fingerprint, k.response_status, k.response_body, k.location
          FROM jsonb_array_elements(p_writes) WITH ORDINALITY AS x(w, n)
          CROSS JOIN LATERAL (
              SELECT k.fingerprint, k.response_status, k.response_body, k.location
                FROM idempotency_keys k
               WHERE k.tenant_id = x.w->>'owner' AND k.scope = x.w->>'scope'
                 AND k.key = x.w->>'key'
                 AND k.expires_at > now() AND k.response_status <> 0
               LIMIT 1) k
    LOOP
        o_index := i; o_replayed := true; o_refusal := NULL; o_detail := NULL; o_event := NULL;
        v_answered[i + 1] := true;
        RETURN NEXT;
    END LOOP;
    IF v_answered = array_fill(true, ARRAY[v_count]) THEN
        RETURN;
    END IF;

    -- 2. Bounded lock waits, then the locks of every write still to make.
    PERFORM set_config('lock_timeout', p_lock_wait, true);
    IF p_announce_later THEN
        PERFORM set_config('eventgate.announce_after_commit', 'on', true);
    END IF;
    FOR v_lock IN SELECT DISTINCT l FROM generate_series(0, v_count - 1) AS n,
                      jsonb_array_elements_text(p_writes->n->'writer_locks') AS l
                  WHERE NOT v_answered[n + 1] ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock_shared(hashtextextended(v_lock, 0));
    END LOOP;
    FOR v_hash IN SELECT DISTINCT hashtextextended(l, 0) FROM generate_series(0, v_count - 1) AS n,
                      jsonb_array_elements_text(p_writes->n->'entity_locks') AS l
                  WHERE NOT v_answered[n + 1] ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(v_hash);
    END LOOP;

    -- 3a. Plain writes, all at once; undone whole and made one by one (3b) when a key
    -- is taken (EGFB0), given twice in the batch (cardinality_violation: one row claimed
    -- twice by one statement) or waited for too long, so that each write gets the outcome
    -- it would have had alone. Any other error fails the batch, as it would in 3b.
    BEGIN
        SELECT array_agg(d) INTO v_made
          FROM eventgate_make_plain_writes(p_writes, v_answered) AS d;
    EXCEPTION WHEN SQLSTATE 'EGFB0' OR cardinality_violation OR lock_not_available THEN
        v_made := NULL;
    END;
    IF v_made IS NOT NULL THEN
        FOREACH m IN ARRAY v_made LOOP
            o_index := m.o_index; o_replayed := false; o_fingerprint := m.o_fingerprint;
            o_status := m.o_status; o_body := m.o_body; o_location := m.o_location;
            o_refusal := NULL; o_detail := NULL; o_event := NULL;
            RETURN NEXT;
        END LOOP;
        RETURN;
    END IF;

    -- 3b. Each write, undone alone when refused.
    FOR i IN 0 .. v_count - 1 LOOP
        CONTINUE WHEN v_answered[i + 1];
        o_index := i; o_refusal := NULL; o_detail := NULL; o_event := NULL;
        BEGIN
            SELECT a.o_replayed, a.o_fingerprint, a.o_status, a.o_body, a.o_location,
                   a.o_funding
              INTO o_replayed, o_fingerprint, o_status, o_body, o_location, v_delta
              FROM eventgate_apply_write(p_writes->i) AS a;
            -- Only a write that was made adds to the totals.
            v_funding := v_funding || coalesce(v_delta, '[]'::jsonb);
        EXCEPTION WHEN SQLSTATE 'EG404' OR SQLSTATE 'EG409' OR SQLSTATE 'EGK09'
                       OR lock_not_available THEN
            GET STACKED DIAGNOSTICS v_refusal = RETURNED_SQLSTATE, v_detail = MESSAGE_TEXT,
                                    v_hint = PG_EXCEPTION_HINT;
            o_replayed := false; o_fingerprint := NULL; o_status := NULL; o_body := NULL;
            o_location := NULL; o_refusal := v_refusal; o_detail := v_detail;
            o_event := nullif(v_hint, '')::int;
        END;
        RETURN NEXT;
    END LOOP;

    -- 4. The funding of every write made, one row version per portfolio and currency.
    IF jsonb_array_length(v_funding) > 0 THEN
        INSERT INTO portfolio_funding AS f (tenant_id, portfolio_id, currency, total)
        SELECT d.tenant, d.portfolio, d.currency, sum(d.amount)
          FROM jsonb_to_recordset(v_funding) AS d(tenant text, portfolio text, currency text,
                                                 amount numeric)
         GROUP BY 1, 2, 3
        ON CONFLICT (tenant_id, portfolio_id, currency)
        DO UPDATE SET total = f.total + EXCLUDED.total;
        UPDATE portfolios p SET updated = now()
          FROM (SELECT DISTINCT d.tenant, d.portfolio
                  FROM jsonb_to_recordset(v_funding) AS d(tenant text, portfolio text)) AS d
         WHERE p.tenant_id = d.tenant AND p.id = d.portfolio AND p.updated <> now();
    END IF;
END
$$;
