-- Atomically commit one change to a room and publish it on the room's channel, so that
-- commit order is broadcast order on every node.
-- KEYS: state hash, rev, log list, ids sorted set (recent change ids, scored by rev).
-- ARGV: base rev ('' for none), replace ('0'/'1'), history size, channel, message head,
--       entry body, dedupe key, number of set fields, dedupe window (in revs), tag,
--       then field/value pairs (values are JSON text), then the fields to unset.
local state, rev_key, log, ids = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local history = tonumber(ARGV[3])

-- A dedupe key seen within the window was committed already (a retry after a lost reply,
-- a client re-sending after a reconnect): report its rev and change nothing.
local current = tonumber(redis.call('GET', rev_key)) or 0
local seen = tonumber(redis.call('ZSCORE', ids, ARGV[7]))
if seen then
  local entry = redis.call('LINDEX', log, seen - current - 1)
  local tag = entry and string.match(entry, '^{"rev":' .. seen .. ',"tag":"(%w+)"') or ''
  return {2, seen, tag}
end

if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= current then
  return {0, current}
end

if ARGV[2] == '1' then
  redis.call('DEL', state)
end
local nset = tonumber(ARGV[8])
local first_unset = 11 + 2 * nset
-- unpack() has a stack limit, so large changes go in chunks.
for i = first_unset, #ARGV, 1000 do
  redis.call('HDEL', state, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
for i = 11, first_unset - 1, 1000 do
  redis.call('HSET', state, unpack(ARGV, i, math.min(i + 999, first_unset - 1)))
end

local rev = current + 1
redis.call('SET', rev_key, rev)
-- Each entry names its own tag and the one before it (a hash chain: see change.py).
local last = redis.call('LINDEX', log, -1)
local prev = last and string.match(last, '^{"rev":%d+,"tag":"(%w+)"') or ''
local entry = '{"rev":' .. rev .. ',"tag":"' .. ARGV[10] .. '","prev":"' .. prev .. '",'
  .. ARGV[6]
redis.call('RPUSH', log, entry)
redis.call('LTRIM', log, -history, -1)
redis.call('ZADD', ids, rev, ARGV[7])
redis.call('ZREMRANGEBYSCORE', ids, '-inf', rev - tonumber(ARGV[9]))
redis.call('PUBLISH', ARGV[4], ARGV[5] .. entry .. '}')
return {1, rev}
