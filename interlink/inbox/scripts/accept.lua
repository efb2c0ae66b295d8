-- One call appends a whole group commit. Per item i (from 0): KEYS[3i+1..3i+3] = dedupe marker
-- (the stream's own name when the item is not deduplicated: a key of the same slot, never
-- touched), stream, tenant backlog counter; on Redis Cluster all in the stream's slot; ARGV[4+5i..8+5i] = "1" to dedupe / "0" not, tenant, kind,
-- conversation, payload. ARGV[1..3] = dedupe ttl, max backlog, accept time (ms). Returns one
-- character per item: "1" appended, "0" seen before, "-" refused (the tenant's backlog is full);
-- one string, because a reply of thousands of integers costs more to read than the script to run.
-- Three commands per new item: the marker is set if absent and the counter raised first, and both
-- are undone in the rare refusal, rather than asked about beforehand (two more commands each).
local results = {}
local max_backlog = tonumber(ARGV[2])
for i = 0, #KEYS / 3 - 1 do
  local dedupe, stream, backlog = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local a = 3 + 5 * i
  local deduped = ARGV[a + 1] == '1'
  local result = '1'
  if deduped and not redis.call('SET', dedupe, '1', 'NX', 'EX', ARGV[1]) then
    result = '0'
  elseif redis.call('INCR', backlog) > max_backlog then
    if redis.call('DECR', backlog) <= 0 then redis.call('DEL', backlog) end
    if deduped then redis.call('DEL', dedupe) end
    result = '-'
  else
    redis.call('XADD', stream, '*', 't', ARGV[a + 2], 'k', ARGV[a + 3], 'c', ARGV[a + 4], 'a', ARGV[3], 'p', ARGV[a + 5])
  end
  results[i + 1] = result
end
return table.concat(results)
