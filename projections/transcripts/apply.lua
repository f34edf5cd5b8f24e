-- The transcript cache's one write: guards, then writes, all in one atomic step.
-- Contract: runwire.projections.transcripts.store (TranscriptStore.commit);
-- body fields: runwire.projections.transcripts.body.
--
-- KEYS[1]  the slot pointer (<prefix>:tx:live or :building)
-- KEYS[2]  the generation's positions hash
-- KEYS[3i], KEYS[3i+1], KEYS[3i+2] (i = 1..nruns)  meta, body, session of run i
--          (the session key repeats the meta key when the run has no session)
-- ARGV     generation, slot, ttl, npos, npos x (field, expected, new),
--          nruns, nruns x (run_id, guard, expected_last, expected_body,
--                          partition, first, last, session, first_ms,
--                          body ('' none, 'r' replace, 'a' append),
--                          committed, count, open, state, applied)
-- Returns  {1, ''} when written, {0, why} when a guard failed (nothing written);
--          why starts with the guard: generation, position or run.

local generation, slot, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local RUN_ARGS = 15

local pointer = redis.call('GET', KEYS[1])
if not pointer and slot == 'live' then
  pointer = '0'
end
if pointer ~= generation then
  return {0, 'generation ' .. generation .. ' is not the ' .. slot .. ' one (' .. tostring(pointer) .. ')'}
end

local npos = tonumber(ARGV[4])
local a = 5
for _ = 1, npos do
  local stored = redis.call('HGET', KEYS[2], ARGV[a]) or '0'
  if stored ~= ARGV[a + 1] then
    return {0, 'position of ' .. ARGV[a] .. ' is ' .. stored .. ', read as ' .. ARGV[a + 1]}
  end
  a = a + 3
end
local runs_at = a + 1
local nruns = tonumber(ARGV[a])

a = runs_at
for i = 1, nruns do
  local meta, body = KEYS[3 * i], KEYS[3 * i + 1]
  local last = tonumber(redis.call('HGET', meta, 'l') or '-1')
  local has_body = redis.call('EXISTS', body) == 1
  if ARGV[a + 1] == 'x' then
    if last ~= tonumber(ARGV[a + 2]) or has_body ~= (ARGV[a + 3] == '1') then
      return {0, 'run ' .. ARGV[a] .. ' changed since it was read'}
    end
  else
    local new_last = tonumber(ARGV[a + 6])
    if not (last < new_last or (last == new_last and not has_body)) then
      return {0, 'run ' .. ARGV[a] .. ' is already at ' .. last}
    end
  end
  a = a + RUN_ARGS
end

a = 5
for _ = 1, npos do
  redis.call('HSET', KEYS[2], ARGV[a], ARGV[a + 2])
  a = a + 3
end

-- Appends to a comma-joined (sep ',') or line-joined (sep '') field.
local function append(key, field, tail, sep)
  if tail == '' then
    return
  end
  local head = redis.call('HGET', key, field)
  if not head or head == '' then
    redis.call('HSET', key, field, tail)
  else
    redis.call('HSET', key, field, head .. sep .. tail)
  end
end

a = runs_at
for i = 1, nruns do
  local meta, body, session = KEYS[3 * i], KEYS[3 * i + 1], KEYS[3 * i + 2]
  local run_id, session_id, mode = ARGV[a], ARGV[a + 7], ARGV[a + 9]
  if redis.call('EXISTS', meta) == 1 then
    redis.call('HSET', meta, 'l', ARGV[a + 6])
  else
    redis.call('HSET', meta, 'p', ARGV[a + 4], 'f', ARGV[a + 5], 'l', ARGV[a + 6], 't', ARGV[a + 8])
    if session_id ~= '' then
      redis.call('HSET', meta, 's', session_id)
      redis.call('ZADD', session, 'NX', ARGV[a + 8], run_id)
    end
  end
  if mode == 'r' then
    redis.call('DEL', body)
    redis.call('HSET', body, 'c', ARGV[a + 10], 'n', ARGV[a + 11], 'o', ARGV[a + 12],
      'st', ARGV[a + 13], 'a', ARGV[a + 14])
  elseif mode == 'a' then
    append(body, 'c', ARGV[a + 10], ',')
    redis.call('HINCRBY', body, 'n', ARGV[a + 11])
    redis.call('HSET', body, 'o', ARGV[a + 12], 'st', ARGV[a + 13])
    append(body, 'a', ARGV[a + 14], '')
  end
  if mode ~= '' and ttl > 0 then
    redis.call('EXPIRE', body, ttl)
  end
  a = a + RUN_ARGS
end
return {1, ''}
