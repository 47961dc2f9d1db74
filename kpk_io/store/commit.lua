-- Atomically commit one change to a room and publish it on the room's channel, so that
-- commit order is broadcast order on every node.
-- KEYS: state hash, rev, log list, ids sorted set (recent change ids, scored by rev),
--       log size (the log's total bytes), state size (bytes of the state's field names
--       and values).
-- ARGV: the fields of kpk_io/store/redis_commit.py CommitArgs, named below in the same
--       order (tests/test_store.py checks), then field/value pairs (values are JSON text),
--       then guard pairs (field, expected: '-' for "anything but a stored text", else the
--       SHA-1 of the field's stored value, '' for absent), then the fields to unset. The
--       log entry's format is kpk_io/store/redis_log.py's.
local base_rev, replace_flag, history, channel, message_head, entry_body, dedupe_key,
  set_count, dedupe_window, tag, history_bytes, retention_ms, max_fields,
  max_state_bytes, guard_count = unpack(ARGV, 1, 15)
local first_set = 16
local state, rev_key, log, ids, size = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local state_size = KEYS[6]
history, history_bytes = tonumber(history), tonumber(history_bytes)
local retention = tonumber(retention_ms)

-- A dedupe key seen within the window was committed already (a retry after a lost reply,
-- a client re-sending after a reconnect): report its rev and change nothing.
local current = tonumber(redis.call('GET', rev_key)) or 0
local seen = tonumber(redis.call('ZSCORE', ids, dedupe_key))
if seen then
  local entry = redis.call('LINDEX', log, seen - current - 1)
  local seen_tag = entry and string.match(entry, '^{"rev":' .. seen .. ',"tag":"(%w+)"') or ''
  return {2, seen, seen_tag}
end

if base_rev ~= '' and tonumber(base_rev) ~= current then
  return {0, current}
end

local nset = tonumber(set_count)
local first_guard = first_set + 2 * nset
local first_unset = first_guard + 2 * tonumber(guard_count)

-- Guards (kpk_io/text_commit.py): a text edit was merged, in Python, into the text as it was
-- read; if the stored text has changed since, nothing is written and the caller merges
-- again (status 4). A plain set must not overwrite a text that it should merge into.
for i = first_guard, first_unset - 1, 2 do
  local old = redis.call('HGET', state, ARGV[i])
  local expected = ARGV[i + 1]
  if expected == '-' then
    if old and string.sub(old, 1, 10) == '{"$text":"' then return {4, current} end
  elseif (old and redis.sha1hex(old) or '') ~= expected then
    return {4, current}
  end
end

-- The room's bounds are checked before anything is written: a script that stopped half
-- way would leave its earlier writes behind. Only the fields this change names are read.
-- A change may not grow a count past its bound; one already past (the limits were
-- lowered) may still shrink.
local fields = redis.call('HLEN', state)
local state_bytes = tonumber(redis.call('GET', state_size))
if fields == 0 then
  state_bytes = 0
elseif not state_bytes then  -- a room written before its size was kept: measured once
  state_bytes = 0
  for _, text in ipairs(redis.call('HGETALL', state)) do state_bytes = state_bytes + #text end
end
local fields_before, bytes_before = fields, state_bytes
local replace = replace_flag == '1'
if replace then
  fields, state_bytes = 0, 0
end
local gone = {}
for i = first_unset, #ARGV do
  local name = ARGV[i]
  local old = replace and 0 or redis.call('HSTRLEN', state, name)
  if old > 0 and not gone[name] then
    fields, state_bytes, gone[name] = fields - 1, state_bytes - #name - old, true
  end
end
for i = first_set, first_guard - 1, 2 do
  local name = ARGV[i]
  local old = (replace or gone[name]) and 0 or redis.call('HSTRLEN', state, name)
  if old == 0 then fields = fields + 1 else state_bytes = state_bytes - #name - old end
  state_bytes = state_bytes + #name + #ARGV[i + 1]
end
if (fields > tonumber(max_fields) and fields > fields_before)
    or (state_bytes > tonumber(max_state_bytes) and state_bytes > bytes_before) then
  return {3, current, '', fields, state_bytes, fields_before, bytes_before}
end

if replace then
  redis.call('DEL', state)
end
redis.call('SET', state_size, state_bytes)
-- unpack() has a stack limit, so large changes go in chunks.
for i = first_unset, #ARGV, 1000 do
  redis.call('HDEL', state, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
for i = first_set, first_guard - 1, 1000 do
  redis.call('HSET', state, unpack(ARGV, i, math.min(i + 999, first_guard - 1)))
end

local rev = current + 1
redis.call('SET', rev_key, rev)
-- Each entry names its own tag and the one before it (a hash chain: see change.py).
local last = redis.call('LINDEX', log, -1)
local prev = last and string.match(last, '^{"rev":%d+,"tag":"(%w+)"') or ''
local entry = '{"rev":' .. rev .. ',"tag":"' .. tag .. '","prev":"' .. prev .. '",'
  .. entry_body
local length = redis.call('RPUSH', log, entry)

-- The log is bounded by count and by bytes, and always keeps the newest entry. Its byte
-- total is kept beside it, so a commit costs what it trims, not a pass over the log.
local bytes = tonumber(redis.call('GET', size))
if bytes then
  bytes = bytes + #entry
else  -- a log written before its total was kept: count it once
  bytes = 0
  for _, kept in ipairs(redis.call('LRANGE', log, 0, -1)) do
    bytes = bytes + #kept
  end
end
while length > 1 and (length > history or bytes > history_bytes) do
  bytes = bytes - #redis.call('LPOP', log)
  length = length - 1
end
if length == 1 then
  bytes = #entry  -- exact, whatever the kept total said
end
redis.call('SET', size, bytes)

redis.call('ZADD', ids, rev, dedupe_key)
redis.call('ZREMRANGEBYSCORE', ids, '-inf', rev - tonumber(dedupe_window))

-- Retention: a commit (like a join) starts the room's time to live again.
if retention > 0 then
  for _, key in ipairs(KEYS) do
    redis.call('PEXPIRE', key, retention)
  end
elseif redis.call('PTTL', log) >= 0 then  -- retention was turned off: keep the room for good
  for _, key in ipairs(KEYS) do
    redis.call('PERSIST', key)
  end
end

redis.call('PUBLISH', channel, message_head .. entry .. '}')
return {1, rev, prev}
