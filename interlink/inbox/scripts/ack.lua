#!lua flags=allow-oom
-- Store a batch of writes, then acknowledge a batch of entries, each exactly once.
-- ARGV[1] = the consumer group, ARGV[2] = the number of writes w. Write j (from 1): KEYS[j] = the
-- key it names first, then in ARGV its number of further arguments, its command, those arguments.
-- Entry i (from 0): KEYS[w+2i+1..w+2i+2] = stream, tenant backlog counter, and the next ARGV = its
-- id. An entry is deleted once acknowledged, and its tenant's backlog released.
-- allow-oom: at maxmemory (noeviction) the acknowledgements, which free memory, go through, and
-- so do the few small writes that must go with them.
-- A refused write ends the script before any entry is acknowledged: the caller retries, then
-- tries each entry alone. Only a key holding another type (WRONGTYPE), which no retry mends, is
-- passed over. Returns {entries acknowledged, writes passed over}.
local group, writes = ARGV[1], tonumber(ARGV[2])
local a, passed = 3, 0
for j = 1, writes do
  local n = tonumber(ARGV[a])
  local reply = redis.pcall(ARGV[a + 1], KEYS[j], unpack(ARGV, a + 2, a + 1 + n))
  if type(reply) == 'table' and reply.err then
    if string.sub(reply.err, 1, 9) ~= 'WRONGTYPE' then return redis.error_reply(reply.err) end
    passed = passed + 1
  end
  a = a + 2 + n
end
local done = 0
for k = writes + 1, #KEYS, 2 do
  local stream, backlog, id = KEYS[k], KEYS[k + 1], ARGV[a]
  a = a + 1
  if redis.call('XACK', stream, group, id) == 1 then
    redis.call('XDEL', stream, id)
    if redis.call('DECR', backlog) <= 0 then redis.call('DEL', backlog) end
    done = done + 1
  end
end
return {done, passed}
