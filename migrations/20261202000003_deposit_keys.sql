-- A deposit keeps the Idempotency-Key it was made with, so a client that lost the answer
-- finds it by that key (GET /deposits?idempotency_key=…) after the key's replay window.
-- Not unique: an expired key may be used again for a new deposit.
ALTER TABLE deposits ADD COLUMN idempotency_key text;
CREATE INDEX deposits_idempotency_key ON deposits (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
