-- Remove a tenant, the index entries it owns and its API keys; publish 'deleted'.
-- KEYS: record, ids, idx phone, idx integration, idx verify, the tenant's key set.
-- ARGV: tenant, channel, api key name prefix.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local fields = {'ix:phone', 'ix:integration', 'ix:verify'}
for i = 1, 3 do
  local old = redis.call('HGET', KEYS[1], fields[i])
  if old and redis.call('HGET', KEYS[2 + i], old) == ARGV[1] then
    redis.call('HDEL', KEYS[2 + i], old)
  end
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[6])) do redis.call('DEL', ARGV[3] .. id) end
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0') + 1
redis.call('DEL', KEYS[1], KEYS[6])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], cjson.encode({tenantId = ARGV[1], version = version, kind = 'deleted'}))
return {'ok', version}
