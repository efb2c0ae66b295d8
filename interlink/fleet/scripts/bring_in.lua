-- Append forwarded entries to a shard's handover stream, each once: KEYS[1] = the handover
-- stream, then per entry i: its arrival marker (named after its outbox entry, which is never
-- reused) and its tenant's backlog counter here; ARGV[1] = the markers' lifetime (s), then per
-- entry: t, k, c, a, g, o, p. An entry whose marker exists arrived before (its sender crashed
-- before deleting it from its outbox) and is dropped. Returns how many were appended.
local added = 0
for i = 0, (#KEYS - 1) / 2 - 1 do
  local marker, backlog, a = KEYS[2 + 2 * i], KEYS[3 + 2 * i], 2 + i * 7
  if redis.call('SET', marker, '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], '*', 't', ARGV[a], 'k', ARGV[a + 1], 'c', ARGV[a + 2],
      'a', ARGV[a + 3], 'g', ARGV[a + 4], 'o', ARGV[a + 5], 'p', ARGV[a + 6])
    redis.call('INCR', backlog)
    added = added + 1
  end
end
return added
