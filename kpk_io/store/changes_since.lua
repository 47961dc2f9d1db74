#!lua flags=no-writes
-- The room's rev and the log entries from rev ARGV[1] on, read atomically.
-- KEYS: rev, log.
-- The entries start at rev `since` itself when it is kept, so its tag can be checked.
-- Just the rev when `since` is in the future, or when the log no longer reaches back to it
-- (then only the whole state will do, and the log is not worth sending).
local rev = tonumber(redis.call('GET', KEYS[1])) or 0
local since = tonumber(ARGV[1])
if since > rev then
  return {rev}
end
local oldest = redis.call('LINDEX', KEYS[2], 0)
local first = oldest and tonumber(string.match(oldest, '^{"rev":(%d+),'))
if since < rev and first and first > since + 1 then
  return {rev}
end
return {rev, redis.call('LRANGE', KEYS[2], since - rev - 1, -1)}
