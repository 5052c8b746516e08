-- What a replay of a committed deposit costs the database (src/idempotency.rs): one
-- indexed read of the stored answer, outside any transaction. The replay ceiling.
SELECT fingerprint, response_status, response_body, location FROM idempotency_keys
  WHERE tenant_id = 'pgb' AND scope = 'deposits' AND key = 'the-one-key'
    AND expires_at > now() AND response_status <> 0;
