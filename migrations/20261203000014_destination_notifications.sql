-- A change to a destination that its relay driver must see is announced on
-- `eventgate_destinations` with the destination's id, so the driver (in whichever replica
-- holds it) reads the row again before its next step instead of every step
-- (delivery/changes.rs). A trigger, so that no path is missed: the API, a replay, a
-- webhook's recorded failure, eventgate disabling it, an operator's own SQL.
--
-- Not announced: what changes on every step and the driver itself knows or does not use
-- (its position as it advances it, the last error and success, the heartbeat). Everything
-- else is, including columns added later. A replay moves the position too, but it also
-- sets `updated`. NOTIFY is delivered at commit.
CREATE FUNCTION eventgate_destination_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eventgate_destinations', OLD.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER destinations_changed AFTER UPDATE ON destinations
    FOR EACH ROW
    WHEN ((to_jsonb(OLD) - '{delivered_tx,delivered_seq,last_error,last_error_at,last_success_at,last_heartbeat_at}'::text[])
          IS DISTINCT FROM
          (to_jsonb(NEW) - '{delivered_tx,delivered_seq,last_error,last_error_at,last_success_at,last_heartbeat_at}'::text[]))
    EXECUTE FUNCTION eventgate_destination_changed();

CREATE TRIGGER destinations_deleted AFTER DELETE ON destinations
    FOR EACH ROW EXECUTE FUNCTION eventgate_destination_changed();
