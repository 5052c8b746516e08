-- One round trip per write, and many writes per commit. Deposits and platform publishes
-- are made by eventgate_write: one statement, hence one transaction, that takes a batch of
-- writes (the server's write batcher gathers the requests that arrive together, and a
-- request alone is a batch of one). The entity locks are held while the database works
-- and commits, never across a network round trip, and the batch shares one commit. The
-- server checks each request and builds every event's envelope; the function does the
-- rest, in the order the correctness rules need:
--   1. each write whose Idempotency-Key holds a committed, live answer gets it at once: a
--      replay takes no lock;
--   2. lock_timeout, the writers' locks of every tenant written to (shared), then every
--      entity lock (sorted by hash, so two writers never wait on each other in a cycle).
--      Taken before the first write: a later writer gets a later transaction id, so
--      per-entity feed order is commit order, and a snapshot never sees a writer half way;
--   3. each write, in order, in a subtransaction of its own (eventgate_apply_write): the
--      key is claimed with the answer (an expired row is taken over; a concurrent request
--      with the same key blocks here until it ends, and its committed answer is returned);
--      per event the tenant exists (platform publishes), the state rule holds, the read
--      model changes, the event is appended; the deposit row.
-- A write that a rule refuses is undone alone and answered with its refusal: o_refusal is
-- EG404 or EG409 (with the problem's detail and the event's index, from 0), EGK09 (its key
-- is in use by a request still running) or 55P03 (a lock wait ran out). The server maps
-- them to problems (store::writes).
--
-- With p_announce_later the outbox trigger sends no NOTIFY: the caller announces the
-- writes once they have committed (feed::announcer). A NOTIFY inside the transaction holds
-- the database-wide notification lock through the commit, so all notifying commits of the
-- database run one after another; measured, it halved the writes a second.

CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('eventgate.announce_after_commit', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('eventgate_outbox', NEW.tenant_id);
    END IF;
    RETURN NULL;
END
$$;

-- A feed position as the API's cursor (feed::cursor, version 2): base64url without padding
-- of the version byte, the transaction id and the sequence number, both big-endian.
CREATE FUNCTION eventgate_cursor(p_tx xid8, p_seq bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT rtrim(translate(encode('\x02'::bytea || int8send(p_tx::text::bigint) || int8send(p_seq),
                                  'base64'), '+/', '-_'), '=')
$$;

CREATE FUNCTION eventgate_refuse(p_code text, p_index int, p_detail text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = p_code, MESSAGE = p_detail, HINT = p_index::text;
END
$$;

-- One write (an element of eventgate_write's p_writes), under the locks its batch holds:
-- owner, scope, key (or null), fingerprint (hex), ttl_secs; events: an array, one object
-- per event (store::writes::EventRow): the outbox row (tenant, event_type, entity,
-- entity_id, change when the type fixes it, id, created, envelope, trace_parent,
-- trace_state), whether to check the tenant exists, and the state rule with its values
-- (rule, portfolio, optimization, external_id, owned_by, value, is_recommended, amount,
-- currency, divest_amount); deposit: null, or the deposit row (tenant, id, portfolio,
-- amount, currency, event_id, created, idempotency_key), whose portfolio must exist and not
-- be INACTIVE; status, body_head, body_tail, location: the answer, whose body is body_head,
-- or body_head || the first event's cursor || body_tail when body_tail is not null (a
-- deposit's answer holds its event's cursor). Raises EG404, EG409 or EGK09 to refuse.
CREATE FUNCTION eventgate_apply_write(w jsonb,
    OUT o_replayed boolean, OUT o_fingerprint bytea, OUT o_status smallint,
    OUT o_body bytea, OUT o_location text)
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
            INSERT INTO portfolio_funding AS f (tenant_id, portfolio_id, currency, total)
            VALUES (e.tenant, e.portfolio, e.currency, e.amount)
            ON CONFLICT (tenant_id, portfolio_id, currency)
            DO UPDATE SET total = f.total + EXCLUDED.total;
            -- now() is the transaction's: the writes of a batch after the first into this
            -- portfolio would only make new versions of a hot row with the same value.
            UPDATE portfolios p SET updated = now()
             WHERE p.tenant_id = e.tenant AND p.id = e.portfolio AND p.updated <> now();
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

-- A batch of writes (p_writes: a JSON array of eventgate_apply_write's objects, each with
-- its writer_locks and entity_locks arrays), one result row per write, by its index.
CREATE FUNCTION eventgate_write(p_writes jsonb, p_lock_wait text, p_announce_later boolean)
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
BEGIN
    -- 1. Committed answers are final (a committed key row always holds its answer).
    FOR i IN 0 .. v_count - 1 LOOP
        w := p_writes->i;
        CONTINUE WHEN w->>'key' IS NULL;
        SELECT k.fingerprint, k.response_status, k.response_body, k.location
          INTO o_fingerprint, o_status, o_body, o_location
          FROM idempotency_keys k
         WHERE k.tenant_id = w->>'owner' AND k.scope = w->>'scope' AND k.key = w->>'key'
           AND k.expires_at > now() AND k.response_status <> 0;
        IF FOUND THEN
            o_index := i; o_replayed := true; o_refusal := NULL; o_detail := NULL; o_event := NULL;
            v_answered[i + 1] := true;
            RETURN NEXT;
        END IF;
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
            SELECT a.o_replayed, a.o_fingerprint, a.o_status, a.o_body, a.o_location
              INTO o_replayed, o_fingerprint, o_status, o_body, o_location
              FROM eventgate_apply_write(p_writes->i) AS a;
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
END
$$;
