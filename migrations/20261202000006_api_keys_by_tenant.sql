-- GET /platform/tenants/{tenant}/keys lists a tenant's keys in id order.
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id) WHERE tenant_id IS NOT NULL;
