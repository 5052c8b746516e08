-- One round trip per write. A client's deposit and a platform publish (one event or a
-- batch) are each one call of eventgate_write, run as its own statement and so as its own
-- transaction: the entity locks are held while the database works and commits, never
-- across a network round trip. The server checks the request and builds every event's
-- envelope; this function does the rest, in the order the correctness rules need:
--   1. a committed, live answer under the Idempotency-Key is returned at once: a replay
--      takes no lock;
--   2. lock_timeout, the tenants' writers' locks (shared, as sorted by the server), then the
--      entity locks (sorted by their hash, so two writers never wait on each other in a
--      cycle). Taken before the first write: a later writer gets a later transaction id,
--      so per-entity feed order is commit order, and a snapshot never sees a writer half
--      way;
--   3. the key is claimed (an expired row is taken over); a concurrent request with the
--      same key blocks here until it ends, and its committed answer is returned;
--   4. per event: the tenant exists (platform publishes), the state rule holds, the read
--      model changes, the event is appended to the outbox;
--   5. the deposit row, for a deposit;
--   6. the answer is stored under the key and returned.
-- A state rule that fails raises SQLSTATE EG404 or EG409 with the problem's detail as
-- its message and the event's index (from 0) as its hint; a key in use by a request that
-- is still running raises EGK09. Raising undoes the whole statement: nothing is written.
-- The server maps these codes to problems (store::writes).
--
-- With p_announce_later the outbox trigger sends no NOTIFY: the caller announces the
-- write once it has committed (feed::announcer). A NOTIFY inside the transaction holds
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

-- p_events: a JSON array, one object per event (store::writes::EventRow): the outbox row
-- (tenant, event_type, entity, entity_id, change when the type fixes it, id, created,
-- envelope, trace_parent, trace_state), whether to check the tenant exists, and the state
-- rule with its values (rule, portfolio, optimization, external_id, owned_by, value,
-- is_recommended, amount, currency, divest_amount).
-- p_deposit: NULL, or the deposit row (tenant, id, portfolio, amount, currency, event_id,
-- created, idempotency_key); its portfolio must exist and not be INACTIVE.
-- The answer's body is p_body_head, or p_body_head || the first event's cursor ||
-- p_body_tail when p_body_tail is not NULL (a deposit's answer holds its event's cursor).
CREATE FUNCTION eventgate_write(
    p_owner text, p_scope text, p_key text, p_fingerprint bytea, p_ttl_secs float8,
    p_lock_wait text, p_writer_locks text[], p_entity_locks text[],
    p_events jsonb, p_deposit jsonb,
    p_status smallint, p_body_head bytea, p_body_tail bytea, p_location text,
    p_announce_later boolean,
    OUT o_replayed boolean, OUT o_fingerprint bytea, OUT o_status smallint,
    OUT o_body bytea, OUT o_location text)
LANGUAGE plpgsql AS $$
DECLARE
    v_lock text;
    v_hash bigint;
    e record;
    v_index int := 0;
    v_change text;
    v_owner text;
    v_status text;
    v_created boolean;
    v_tx xid8;
    v_seq bigint;
    v_first_tx xid8;
    v_first_seq bigint;
BEGIN
    o_replayed := false;
    -- 1. A committed answer is final: a committed row always holds its answer.
    IF p_key IS NOT NULL THEN
        SELECT k.fingerprint, k.response_status, k.response_body, k.location
          INTO o_fingerprint, o_status, o_body, o_location
          FROM idempotency_keys k
         WHERE k.tenant_id = p_owner AND k.scope = p_scope AND k.key = p_key
           AND k.expires_at > now() AND k.response_status <> 0;
        IF FOUND THEN
            o_replayed := true;
            RETURN;
        END IF;
    END IF;

    -- 2. Bounded lock waits, then the locks, before any write.
    PERFORM set_config('lock_timeout', p_lock_wait, true);
    IF p_announce_later THEN
        PERFORM set_config('eventgate.announce_after_commit', 'on', true);
    END IF;
    FOREACH v_lock IN ARRAY p_writer_locks LOOP
        PERFORM pg_advisory_xact_lock_shared(hashtextextended(v_lock, 0));
    END LOOP;
    FOR v_hash IN SELECT DISTINCT hashtextextended(k, 0) FROM unnest(p_entity_locks) AS k
                  ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(v_hash);
    END LOOP;

    -- 3. The key.
    IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_keys AS k (tenant_id, scope, key, fingerprint, expires_at)
        VALUES (p_owner, p_scope, p_key, p_fingerprint,
                now() + make_interval(secs => p_ttl_secs))
        ON CONFLICT (tenant_id, scope, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, expires_at = EXCLUDED.expires_at,
                created = now(), response_status = 0, response_body = '', location = NULL
            WHERE k.expires_at <= now();
        IF NOT FOUND THEN
            SELECT k.fingerprint, k.response_status, k.response_body, k.location
              INTO o_fingerprint, o_status, o_body, o_location
              FROM idempotency_keys k
             WHERE k.tenant_id = p_owner AND k.scope = p_scope AND k.key = p_key;
            IF NOT FOUND THEN
                PERFORM eventgate_refuse('EGK09', 0,
                    'the Idempotency-Key is being reused concurrently; retry');
            END IF;
            o_replayed := true;
            RETURN;
        END IF;
    END IF;

    -- 4. The deposit's own rule, then each event.
    IF p_deposit IS NOT NULL THEN
        SELECT p.status INTO v_status FROM portfolios p
         WHERE p.tenant_id = p_deposit->>'tenant' AND p.id = p_deposit->>'portfolio';
        IF NOT FOUND THEN
            PERFORM eventgate_refuse('EG404', 0, 'portfolio');
        ELSIF v_status = 'INACTIVE' THEN
            PERFORM eventgate_refuse('EG409', 0, format(
                'portfolio ''%s'' is INACTIVE and accepts no deposits', p_deposit->>'portfolio'));
        END IF;
    END IF;

    FOR e IN SELECT * FROM jsonb_to_recordset(p_events) AS x(
            tenant text, check_tenant boolean, event_type text, entity text, entity_id text,
            change text, id uuid, created timestamptz, envelope text, trace_parent text,
            trace_state text, rule text, portfolio text, optimization text, external_id text,
            owned_by text, value text, is_recommended boolean, amount numeric, currency text,
            divest_amount text)
    LOOP
        IF e.check_tenant AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = e.tenant) THEN
            PERFORM eventgate_refuse('EG404', v_index, format('no tenant ''%s''', e.tenant));
        END IF;
        -- Rules that name a portfolio need it to exist.
        IF e.rule IN ('fund_portfolio', 'optimization_status', 'optimization_choice')
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
            UPDATE portfolios p SET updated = now()
             WHERE p.tenant_id = e.tenant AND p.id = e.portfolio;
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

        INSERT INTO outbox (id, tenant_id, event_type, entity, entity_id, change, created,
                            envelope, trace_parent, trace_state)
        VALUES (e.id, e.tenant, e.event_type, e.entity, e.entity_id, coalesce(e.change, v_change),
                e.created, e.envelope, e.trace_parent, e.trace_state)
        RETURNING tx_id, seq INTO v_tx, v_seq;
        IF v_first_seq IS NULL THEN
            v_first_tx := v_tx;
            v_first_seq := v_seq;
        END IF;
        v_index := v_index + 1;
    END LOOP;

    -- 5. The deposit.
    IF p_deposit IS NOT NULL THEN
        INSERT INTO deposits (tenant_id, id, portfolio_id, amount, currency, event_id, created,
                              idempotency_key)
        SELECT d.tenant, d.id, d.portfolio, d.amount, d.currency, d.event_id, d.created,
               d.idempotency_key
          FROM jsonb_to_record(p_deposit) AS d(tenant text, id uuid, portfolio text,
               amount numeric, currency text, event_id uuid, created timestamptz,
               idempotency_key text);
    END IF;

    -- 6. The answer.
    o_status := p_status;
    o_location := p_location;
    o_fingerprint := p_fingerprint;
    o_body := CASE WHEN p_body_tail IS NULL THEN p_body_head
                   ELSE p_body_head || convert_to(eventgate_cursor(v_first_tx, v_first_seq), 'UTF8')
                        || p_body_tail END;
    IF p_key IS NOT NULL THEN
        UPDATE idempotency_keys k
           SET response_status = o_status, response_body = o_body, location = o_location
         WHERE k.tenant_id = p_owner AND k.scope = p_scope AND k.key = p_key;
    END IF;
END
$$;
