-- Fewer statements per write in a batch (migration 20261202000009 made the batch call):
--   * the batch's replays are looked up by one statement, not one per write;
--   * a funding event no longer updates its portfolio's total and `updated` itself: each
--     write made returns its amounts (o_funding), and the batch adds them up and writes
--     each portfolio's total and `updated` once, after its last write. The entity locks
--     are still held; no rule reads a total, so no write of the batch can tell. A
--     portfolio removed by a later write of the same batch makes the batch fail as a
--     whole (the funding row's foreign key), and each write is then made alone.
-- Measured with the write benchmarks (docs/BENCHMARKS.md).

DROP FUNCTION eventgate_apply_write(jsonb);

CREATE FUNCTION eventgate_apply_write(w jsonb,
    OUT o_replayed boolean, OUT o_fingerprint bytea, OUT o_status smallint,
    OUT o_body bytea, OUT o_location text, OUT o_funding jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_owner_id text := w->>'owner';
    v_scope text := w->>'scope';
    v_key text := w->>'key';
    v_fingerprint bytea := decode(w->>'fingerprint', 'hex');
    v_deposit jsonb := nullif(w->'deposit', 'null'::jsonb);
    e record;
    v_index int := 0;
    v_change text;
    v_owner text;
    v_status text;
    v_created boolean;
    v_sequence regclass := pg_get_serial_sequence('outbox', 'seq')::regclass;
    v_seq bigint;
    v_first_seq bigint;
BEGIN
    -- The answer first, so that the key's row is written once, with it. A deposit's
    -- answer holds the cursor of its event, known before the event is appended: this
    -- transaction's id and the outbox sequence's next number, which the append then uses.
    o_replayed := false;
    o_status := (w->>'status')::smallint;
    o_location := w->>'location';
    o_fingerprint := v_fingerprint;
    o_body := convert_to(w->>'body_head', 'UTF8');
    IF w->>'body_tail' IS NOT NULL THEN
        v_first_seq := nextval(v_sequence);
        o_body := o_body
            || convert_to(eventgate_cursor(pg_current_xact_id(), v_first_seq), 'UTF8')
            || convert_to(w->>'body_tail', 'UTF8');
    END IF;
    IF v_key IS NOT NULL THEN
        INSERT INTO idempotency_keys AS k (tenant_id, scope, key, fingerprint, expires_at,
                                           response_status, response_body, location)
        VALUES (v_owner_id, v_scope, v_key, v_fingerprint,
                now() + make_interval(secs => (w->>'ttl_secs')::float8),
                o_status, o_body, o_location)
        ON CONFLICT (tenant_id, scope, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, expires_at = EXCLUDED.expires_at,
                created = now(), response_status = EXCLUDED.response_status,
                response_body = EXCLUDED.response_body, location = EXCLUDED.location
            WHERE k.expires_at <= now();
        IF NOT FOUND THEN
            SELECT k.fingerprint, k.response_status, k.response_body, k.location
              INTO o_fingerprint, o_status, o_body, o_location
              FROM idempotency_keys k
             WHERE k.tenant_id = v_owner_id AND k.scope = v_scope AND k.key = v_key;
            -- Not found, or found without an answer: the earlier write of this key is in
            -- this very batch and was refused, or is another transaction's, still running.
            IF NOT FOUND OR o_status = 0 THEN
                PERFORM eventgate_refuse('EGK09', 0,
                    'the Idempotency-Key is being reused concurrently; retry');
            END IF;
            o_replayed := true;
            RETURN;
        END IF;
    END IF;

    IF v_deposit IS NOT NULL THEN
        SELECT p.status INTO v_status FROM portfolios p
         WHERE p.tenant_id = v_deposit->>'tenant' AND p.id = v_deposit->>'portfolio';
        IF NOT FOUND THEN
            PERFORM eventgate_refuse('EG404', 0, 'portfolio');
        ELSIF v_status = 'INACTIVE' THEN
            PERFORM eventgate_refuse('EG409', 0, format(
                'portfolio ''%s'' is INACTIVE and accepts no deposits', v_deposit->>'portfolio'));
        END IF;
    END IF;
    FOR e IN SELECT * FROM jsonb_to_recordset(w->'events') AS x(
            tenant text, check_tenant boolean, event_type text, entity text, entity_id text,
            change text, id uuid, created timestamptz, envelope text, trace_parent text,
            trace_state text, rule text, portfolio text, optimization text, external_id text,
            owned_by text, value text, is_recommended boolean, amount numeric, currency text,
            divest_amount text)
    LOOP
        IF e.check_tenant AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = e.tenant) THEN
            PERFORM eventgate_refuse('EG404', v_index, format('no tenant ''%s''', e.tenant));
        END IF;
        -- Rules that name a portfolio need it to exist (a deposit's was just checked).
        IF e.rule IN ('fund_portfolio', 'optimization_status', 'optimization_choice')
           AND v_deposit IS NULL
           AND NOT EXISTS (SELECT 1 FROM portfolios p
                            WHERE p.tenant_id = e.tenant AND p.id = e.portfolio) THEN
            PERFORM eventgate_refuse('EG404', v_index,
                format('no portfolio ''%s'' for this tenant', e.portfolio));
        END IF;
        v_change := 'Updated';
        CASE e.rule
        WHEN 'create_portfolio' THEN
            INSERT INTO portfolios (tenant_id, id, external_id, owned_by_user_id)
            VALUES (e.tenant, e.portfolio, e.external_id, e.owned_by) ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                PERFORM eventgate_refuse('EG409', v_index,
                    format('portfolio ''%s'' already exists', e.portfolio));
            END IF;
            v_change := 'Created';
        WHEN 'portfolio_status' THEN
            UPDATE portfolios p SET status = e.value, external_id = e.external_id, updated = now()
             WHERE p.tenant_id = e.tenant AND p.id = e.portfolio;
            IF NOT FOUND THEN
                PERFORM eventgate_refuse('EG404', v_index,
                    format('no portfolio ''%s'' for this tenant', e.portfolio));
            END IF;
        WHEN 'fund_portfolio' THEN
            -- Added to the totals by the batch, once per portfolio and currency, after
            -- its last write (nothing in a batch reads a total).
            o_funding := coalesce(o_funding, '[]'::jsonb) || jsonb_build_object(
                'tenant', e.tenant, 'portfolio', e.portfolio, 'currency', e.currency,
                'amount', e.amount);
        WHEN 'divest_amount' THEN
            UPDATE portfolios p SET divest_amount = e.divest_amount, divest_currency = e.currency,
                   external_id = e.external_id, updated = now()
             WHERE p.tenant_id = e.tenant AND p.id = e.portfolio;
            IF NOT FOUND THEN
                PERFORM eventgate_refuse('EG404', v_index,
                    format('no portfolio ''%s'' for this tenant', e.portfolio));
            END IF;
        WHEN 'optimization_status', 'optimization_choice' THEN
            SELECT o.portfolio_id INTO v_owner FROM optimizations o
             WHERE o.tenant_id = e.tenant AND o.id = e.optimization;
            IF FOUND AND v_owner <> e.portfolio THEN
                PERFORM eventgate_refuse('EG409', v_index, format(
                    'optimization ''%s'' belongs to portfolio ''%s'', not ''%s''',
                    e.optimization, v_owner, e.portfolio));
            END IF;
            IF e.rule = 'optimization_status' THEN
                INSERT INTO optimizations AS o
                       (tenant_id, id, portfolio_id, external_id, status, is_recommended)
                VALUES (e.tenant, e.optimization, e.portfolio, e.external_id, e.value,
                        e.is_recommended)
                ON CONFLICT (tenant_id, id) DO UPDATE
                    SET status = EXCLUDED.status, is_recommended = EXCLUDED.is_recommended,
                        external_id = EXCLUDED.external_id, updated = now()
                RETURNING (o.xmax = 0) INTO v_created;
                IF v_created THEN
                    v_change := 'Created';
                END IF;
            ELSE
                IF v_owner IS NULL THEN
                    PERFORM eventgate_refuse('EG409', v_index, format(
                        'optimization ''%s'' has no status yet; publish its optimizations.status-update first',
                        e.optimization));
                END IF;
                UPDATE optimizations o SET owner_choice = e.value, external_id = e.external_id,
                       updated = now()
                 WHERE o.tenant_id = e.tenant AND o.id = e.optimization;
            END IF;
        WHEN 'remove_portfolio' THEN
            DELETE FROM portfolios p WHERE p.tenant_id = e.tenant AND p.id = e.portfolio;
            IF NOT FOUND THEN
                PERFORM eventgate_refuse('EG404', v_index,
                    format('no portfolio ''%s'' for this tenant', e.portfolio));
            END IF;
        WHEN 'none' THEN
            NULL;
        END CASE;

        v_seq := CASE WHEN v_index = 0 AND v_first_seq IS NOT NULL THEN v_first_seq
                      ELSE nextval(v_sequence) END;
        INSERT INTO outbox (id, tenant_id, seq, event_type, entity, entity_id, change, created,
                            envelope, trace_parent, trace_state)
        OVERRIDING SYSTEM VALUE
        VALUES (e.id, e.tenant, v_seq, e.event_type, e.entity, e.entity_id,
                coalesce(e.change, v_change), e.created, e.envelope, e.trace_parent,
                e.trace_state);
        v_index := v_index + 1;
    END LOOP;

    IF v_deposit IS NOT NULL THEN
        INSERT INTO deposits (tenant_id, id, portfolio_id, amount, currency, event_id, created,
                              idempotency_key)
        SELECT d.tenant, d.id, d.portfolio, d.amount, d.currency, d.event_id, d.created,
               d.idempotency_key
          FROM jsonb_to_record(v_deposit) AS d(tenant text, id uuid, portfolio text,
               amount numeric, currency text, event_id uuid, created timestamptz,
               idempotency_key text);
    END IF;
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
BEGIN
    -- 1. Committed answers are final (a committed key row always holds its answer).
    FOR i, o_fingerprint, o_status, o_body, o_location IN
        SELECT x.n - 1, k.fingerprint, k.response_status, k.response_body, k.location
          FROM jsonb_array_elements(p_writes) WITH ORDINALITY AS x(w, n)
          JOIN idempotency_keys k
            ON k.tenant_id = x.w->>'owner' AND k.scope = x.w->>'scope' AND k.key = x.w->>'key'
         WHERE k.expires_at > now() AND k.response_status <> 0
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

    -- 3. Each write, undone alone when refused.
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
