-- Every change to a key row (revoked, expiry changed, deleted) is announced on
-- `eventgate_keys` with the key's id, so each replica drops it from its key cache
-- (key_cache.rs). A trigger, so that no path is missed: the API, the start-up revocation
-- of a replaced platform key, an operator's own SQL. NOTIFY is delivered at commit.
CREATE FUNCTION eventgate_key_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eventgate_keys', OLD.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_changed AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION eventgate_key_changed();
