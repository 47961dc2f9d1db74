#!lua flags=no-writes
-- The room's rev and the log entries after ARGV[1], read atomically.
-- KEYS: rev, log.
local rev = tonumber(redis.call('GET', KEYS[1])) or 0
local since = tonumber(ARGV[1])
if since >= rev then
  return {rev}
end
return {rev, redis.call('LRANGE', KEYS[2], since - rev, -1)}
