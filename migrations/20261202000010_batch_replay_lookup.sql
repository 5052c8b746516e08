-- Replays of a batch are looked up by one statement, not one per write: the batch call
-- of eventgate_write (migration 20261202000009) is otherwise unchanged. Measured with the
-- write benchmarks (docs/BENCHMARKS.md).

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
