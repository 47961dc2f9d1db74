#!lua flags=no-writes
-- The room's rev and the log entries from rev ARGV[1] on, read atomically.
-- KEYS: rev, log.
-- The entries start at rev `since` itself when it is kept, so its tag can be checked.
local rev = tonumber(redis.call('GET', KEYS[1])) or 0
local since = tonumber(ARGV[1])
if since > rev then
  return {rev}
end
return {rev, redis.call('LRANGE', KEYS[2], since - rev - 1, -1)}
