-- Atomically commit one change to a room and publish it on the room's channel, so that
-- commit order is broadcast order on every node.
-- KEYS: state hash, rev, log list.
-- ARGV: base rev ('' for none), replace ('0'/'1'), history size, channel, message head,
--       entry body, token, check token ('0'/'1'), number of set fields,
--       then field/value pairs (values are JSON text), then the fields to unset.
local state, rev_key, log = KEYS[1], KEYS[2], KEYS[3]
local current = tonumber(redis.call('GET', rev_key)) or 0

if ARGV[8] == '1' then
  -- A retry after a lost reply: if the first attempt was committed, report it again.
  local recent = redis.call('LRANGE', log, -64, -1)
  local needle = '"token":"' .. ARGV[7] .. '"'
  for i = #recent, 1, -1 do
    if string.find(recent[i], needle, 1, true) then
      return {2, tonumber(string.match(recent[i], '^{"rev":(%d+)'))}
    end
  end
end

if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= current then
  return {0, current}
end

if ARGV[2] == '1' then
  redis.call('DEL', state)
end
local nset = tonumber(ARGV[9])
local first_unset = 10 + 2 * nset
for i = first_unset, #ARGV, 1000 do
  redis.call('HDEL', state, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
-- unpack() has a stack limit, so large changes go in chunks.
for i = 10, first_unset - 1, 1000 do
  redis.call('HSET', state, unpack(ARGV, i, math.min(i + 999, first_unset - 1)))
end

local rev = current + 1
redis.call('SET', rev_key, rev)
local entry = '{"rev":' .. rev .. ',' .. ARGV[6]
redis.call('RPUSH', log, entry)
redis.call('LTRIM', log, -tonumber(ARGV[3]), -1)
redis.call('PUBLISH', ARGV[4], ARGV[5] .. entry .. '}')
return {1, rev}
