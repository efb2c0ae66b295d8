-- Acknowledge a batch, each entry exactly once: per entry i (from 0), KEYS[2i+1..2i+2] = stream,
-- tenant backlog counter and ARGV[i+2] = entry id; ARGV[1] = the consumer group. An entry is
-- deleted once acknowledged, and its tenant's backlog released. Returns how many were acknowledged.
local done = 0
for i = 0, #KEYS / 2 - 1 do
  local stream, backlog, id = KEYS[2 * i + 1], KEYS[2 * i + 2], ARGV[i + 2]
  if redis.call('XACK', stream, ARGV[1], id) == 1 then
    redis.call('XDEL', stream, id)
    if redis.call('DECR', backlog) <= 0 then redis.call('DEL', backlog) end
    done = done + 1
  end
end
return done
