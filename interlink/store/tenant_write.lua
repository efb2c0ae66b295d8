-- One write of a tenant record and its indexes, checked before anything changes.
-- KEYS: record, ids, idx phone, idx integration, idx verify.
-- ARGV: tenant, mode (create|update), kind, now, channel, phone, integration, verify, field/value...
-- Index arguments: '*' (leave the index as it is), '' (remove) or the new value.
local rec = KEYS[1]
local tenant, mode, kind, now, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local exists = redis.call('EXISTS', rec) == 1
if mode == 'create' and exists then return {'exists'} end
if mode == 'update' and not exists then return {'missing'} end
local fields = {'ix:phone', 'ix:integration', 'ix:verify'}
local names = {'phone', 'integration', 'verify'}
for i = 1, 3 do
  local new = ARGV[5 + i]
  if new ~= '*' and new ~= '' then
    local owner = redis.call('HGET', KEYS[2 + i], new)
    if owner and owner ~= tenant then return {'conflict', names[i]} end
  end
end
for i = 1, 3 do
  local new = ARGV[5 + i]
  if new ~= '*' then
    local old = redis.call('HGET', rec, fields[i])
    if old and old ~= new and redis.call('HGET', KEYS[2 + i], old) == tenant then
      redis.call('HDEL', KEYS[2 + i], old)
    end
    if new == '' then
      redis.call('HDEL', rec, fields[i])
    else
      redis.call('HSET', KEYS[2 + i], new, tenant)
      redis.call('HSET', rec, fields[i], new)
    end
  end
end
if #ARGV > 8 then redis.call('HSET', rec, unpack(ARGV, 9)) end
if mode == 'create' then
  redis.call('HSET', rec, 'tenantId', tenant, 'createdAt', now)
  redis.call('ZADD', KEYS[2], 0, tenant)
end
redis.call('HSET', rec, 'updatedAt', now)
local version = redis.call('HINCRBY', rec, 'version', 1)
redis.call('PUBLISH', channel, cjson.encode({tenantId = tenant, version = version, kind = kind}))
return {'ok', version}
