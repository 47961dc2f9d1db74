-- One room as a listing shows it, read atomically.
-- KEYS: state hash, rev, log list, state size (bytes of the field names and values).
-- Returns: rev, number of fields, bytes of the field names and values, last log entry.
local count = redis.call('HLEN', KEYS[1])
local bytes = tonumber(redis.call('GET', KEYS[4]))
if count == 0 then
  bytes = 0
elseif not bytes then  -- a room written before its size was kept: measured here
  bytes = 0
  for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
    bytes = bytes + #name + redis.call('HSTRLEN', KEYS[1], name)
  end
end
return {redis.call('GET', KEYS[2]) or '0', count, bytes, redis.call('LINDEX', KEYS[3], -1)}
