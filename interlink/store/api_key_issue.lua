-- Store a key's digest, only for a tenant that exists at that instant: no key outlives a
-- concurrent delete of its tenant.
-- KEYS: record, the tenant's key set, the key. ARGV: tenant, key id, sha256, now.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], 'tenantId', ARGV[1], 'sha256', ARGV[3], 'createdAt', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
