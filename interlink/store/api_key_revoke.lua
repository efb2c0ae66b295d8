-- Remove a key, only if it belongs to the tenant named.
-- KEYS: the key, the tenant's key set. ARGV: tenant, key id.
if redis.call('HGET', KEYS[1], 'tenantId') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
