-- Take entries out of a stream into its outbox, on their way to another shard. KEYS = the source
-- stream (an inbox or a handover stream), the stream's outbox, the stream's fence, then per entry
-- its tenant's backlog counter here (released: the destination counts it when it arrives);
-- ARGV[1] = the forwarder's generation, ARGV[2] = the consumer group, then per entry: id,
-- destination shard.
-- Returns how many were taken, or -1 when the fence is newer than the forwarder's generation
-- (the fleet changed again: the forwarder must not act on an old count). Each entry keeps its
-- accept generation (g) and original id (o), by which its new owner orders it.
if tonumber(redis.call('GET', KEYS[3]) or '0') > tonumber(ARGV[1]) then return -1 end
local taken = 0
for i = 3, #ARGV, 2 do
  local id, to, backlog = ARGV[i], ARGV[i + 1], KEYS[4 + (i - 3) / 2]
  local found = redis.call('XRANGE', KEYS[1], id, id)
  if #found == 1 then
    local f, fields = found[1][2], {}
    for j = 1, #f, 2 do fields[f[j]] = f[j + 1] end
    redis.call('XADD', KEYS[2], '*', 't', fields['t'], 'k', fields['k'], 'c', fields['c'] or '',
      'a', fields['a'] or '0', 'g', fields['g'] or '0', 'o', fields['o'] or id, 'p', fields['p'],
      'to', to)
    pcall(redis.call, 'XACK', KEYS[1], ARGV[2], id)
    redis.call('XDEL', KEYS[1], id)
    if redis.call('DECR', backlog) <= 0 then redis.call('DEL', backlog) end
    taken = taken + 1
  end
end
return taken
