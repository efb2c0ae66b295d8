-- One call appends a whole group commit. Per item i (from 0): KEYS[4i+1..4i+4] = dedupe marker
-- (the stream's own name when the item is not deduplicated: a key of the same slot, never
-- touched), stream, tenant backlog counter, the stream's fence; on Redis Cluster all in the
-- stream's slot; ARGV[5+5i..9+5i] = "1" to dedupe / "0" not, tenant, kind, conversation, payload.
-- ARGV[1..4] = dedupe ttl, max backlog, accept time (ms), the writer's fleet generation. Returns
-- one character per item: "1" appended, "0" seen before, "-" refused (the tenant's backlog is
-- full), "f" refused because the stream's fence is newer than the writer's generation (the fleet
-- changed its shard count; nothing was written for the item); one string, because a reply of
-- thousands of integers costs more to read than the script to run.
-- Three commands per new item: the marker is set if absent and the counter raised first, and both
-- are undone in the rare refusal, rather than asked about beforehand (two more commands each).
-- The fence is read once per stream; a writer newer than it raises it.
local results = {}
local max_backlog = tonumber(ARGV[2])
local generation = tonumber(ARGV[4])
local fenced = {}
for i = 0, #KEYS / 4 - 1 do
  local dedupe, stream, backlog, fence = KEYS[4 * i + 1], KEYS[4 * i + 2], KEYS[4 * i + 3], KEYS[4 * i + 4]
  local a = 4 + 5 * i
  local deduped = ARGV[a + 1] == '1'
  local result = '1'
  if fenced[fence] == nil then
    local current = tonumber(redis.call('GET', fence) or '0')
    fenced[fence] = current > generation
    if current < generation then redis.call('SET', fence, generation) end
  end
  if fenced[fence] then
    result = 'f'
  elseif deduped and not redis.call('SET', dedupe, '1', 'NX', 'EX', ARGV[1]) then
    result = '0'
  elseif redis.call('INCR', backlog) > max_backlog then
    if redis.call('DECR', backlog) <= 0 then redis.call('DEL', backlog) end
    if deduped then redis.call('DEL', dedupe) end
    result = '-'
  else
    redis.call('XADD', stream, '*', 't', ARGV[a + 2], 'k', ARGV[a + 3], 'c', ARGV[a + 4], 'a', ARGV[3], 'g', ARGV[4], 'p', ARGV[a + 5])
  end
  results[i + 1] = result
end
return table.concat(results)
