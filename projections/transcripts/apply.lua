-- The transcript cache's one write: guards, then writes, all in one atomic step.
-- Contract: runwire.projections.transcripts.store (TranscriptStore.commit);
-- body fields: runwire.projections.transcripts.body.
--
-- KEYS[1]  the slot pointer (<prefix>:tx:live or :building)
-- KEYS[2]  the generation's positions hash
-- ARGV     generation, slot, ttl, npos, npos x (field, expected, new),
--          nns, nns x ns (the namespaces the runs are in),
--          nruns, nruns x (header, blob),
--          ndel, ndel x (ns, session_id) (sessions deleted),
--          nerase, nerase x (ns, run_id) (runs erased),
--          nclear, nclear x (ns, session_id, clear point ms) (sessions cleared, in log order),
--          nend, nend x (ns, session_id) (sessions ended)
--          ns: the key prefix of the tenant's namespace in the generation
--          (<prefix>:tx:<n>: or <prefix>:tx:<n>:t:<tenant>:, built by keys.py):
--          its `deleted`, `erased`, `cleared`, `ended`, `ver`, `owners:`, `session:`,
--          `meta:` and `run:` keys are the ones a run, deletion, erasure or
--          clear of that tenant touches. Tenants never share any of them.
--          header: guard|expected_last|expected_body|partition|first|last|first_ms|
--                  body|count|ns|#run_id|#session|#owner|#committed|#open|#state|#applied
--          (guard x or f; expected_body 0/1; body '' none, r replace, a append;
--          first_ms is negative for an event stamped before 1970; ns the
--          run's namespace, 1-based among the nns)
--          blob: run_id .. session .. owner .. committed .. open .. state .. applied
--          (cut by the seven lengths; session '' when the run has none)
--          owner: the run's owner tag (meta `u`, counted in the session's `owners`)
--          Two arguments per run: packing them is most of the client's work.
--          A run's keys (meta:<run>, run:<run>, session:<session>), a deleted
--          session's runs (the members of its session index), erased runs and
--          the generation's `cleared` and `ver` hashes are derived from ns, not
--          declared in KEYS: fine on the standalone Redis this targets, not on
--          a Redis Cluster.
--          Every session whose data this commit changes gets a new version
--          (see `bump`), one per commit.
-- Returns  {1, ''} when written, {0, why} when a guard failed (nothing written);
--          why starts with the guard: generation, position, run or deleted (a run
--          of a deleted session, or an erased run).

local generation, slot, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local HEADER = '^(%a)|(-?%d+)|(%d)|(%d+)|(%d+)|(%d+)|(-?%d+)|(%a?)|(%d+)|(%d+)|'
  .. '(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)$'

-- Run i's header and blob (see above), cut into its fields.
local function run_at(at, namespaces)
  local guard, expected, body_expected, p, f, l, t, mode, count, ns, lr, ls, lu, lc, lo, lst, la =
    string.match(ARGV[at], HEADER)
  local blob = ARGV[at + 1]
  local cuts, from = {}, 1
  for _, n in ipairs({lr, ls, lu, lc, lo, lst, la}) do
    local to = from + tonumber(n)
    cuts[#cuts + 1] = string.sub(blob, from, to - 1)
    from = to
  end
  local run_id, session_id = cuts[1], cuts[2]
  ns = namespaces[tonumber(ns)]
  return {
    guard = guard, expected = tonumber(expected), body_expected = body_expected == '1',
    p = p, f = f, l = l, t = t, mode = mode, count = count, ns = ns,
    run_id = run_id, session_id = session_id, owner = cuts[3],
    committed = cuts[4], open = cuts[5], state = cuts[6], applied = cuts[7],
    meta = ns .. 'meta:' .. run_id, body = ns .. 'run:' .. run_id,
    session = ns .. 'session:' .. session_id,
  }
end

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
local namespaces = {}
local nns = tonumber(ARGV[a])
for j = 1, nns do
  namespaces[j] = ARGV[a + j]
end
a = a + nns + 1
local nruns = tonumber(ARGV[a])
local runs = {}
for i = 1, nruns do
  local h = run_at(a + 2 * i - 1, namespaces)
  runs[i] = h
  local session_id, ns = h.session_id, h.ns
  if session_id ~= '' and redis.call('SISMEMBER', ns .. 'deleted', session_id) == 1 then
    return {0, 'deleted session ' .. session_id .. ' of run ' .. h.run_id .. ' is erased'}
  end
  if redis.call('SISMEMBER', ns .. 'erased', h.run_id) == 1 then
    return {0, 'deleted session took run ' .. h.run_id .. ' with it'}
  end
  local last = tonumber(redis.call('HGET', h.meta, 'l') or '-1')
  local has_body = redis.call('EXISTS', h.body) == 1
  if h.guard == 'x' then
    if last ~= h.expected or has_body ~= h.body_expected then
      return {0, 'run ' .. h.run_id .. ' changed since it was read'}
    end
  else
    local new_last = tonumber(h.l)
    if not (last < new_last or (last == new_last and not has_body)) then
      return {0, 'run ' .. h.run_id .. ' is already at ' .. last}
    end
  end
end
local dels_at = a + 2 * nruns + 1

-- A new version of a session (of the namespace ns): above the one it had,
-- and at least the server's clock in microseconds, so that a version lost
-- with a flush is never handed out again for other data.
-- One new version per session and commit: every change of the commit is
-- read together, so its runs all carry the one version.
local now = redis.call('TIME')
local clock = tonumber(now[1]) * 1000000 + tonumber(now[2])
local bumped = {}
local function bump(ns, session_id)
  local versions = ns .. 'ver'
  local done = bumped[versions .. '\0' .. session_id]
  if done then
    return done
  end
  local old = tonumber(redis.call('HGET', versions, session_id) or '0')
  local new = string.format('%.0f', math.max(old + 1, clock))
  redis.call('HSET', versions, session_id, new)
  bumped[versions .. '\0' .. session_id] = new
  return new
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

for i = 1, nruns do
  local h = runs[i]
  local meta, body, session = h.meta, h.body, h.session
  local run_id, session_id, ns, mode = h.run_id, h.session_id, h.ns, h.mode
  if redis.call('EXISTS', meta) == 1 then
    redis.call('HSET', meta, 'l', h.l)
  else
    redis.call('HSET', meta, 'p', h.p, 'f', h.f, 'l', h.l, 't', h.t, 'u', h.owner)
    if session_id ~= '' then
      redis.call('HSET', meta, 's', session_id)
      if redis.call('ZADD', session, 'NX', h.t, run_id) == 1 then
        redis.call('HINCRBY', ns .. 'owners:' .. session_id, h.owner, 1)
      end
    end
  end
  if mode == 'r' then
    redis.call('DEL', body)
    redis.call('HSET', body, 'c', h.committed, 'n', h.count, 'o', h.open, 'st', h.state,
      'a', h.applied)
  elseif mode == 'a' then
    append(body, 'c', h.committed, ',')
    redis.call('HINCRBY', body, 'n', h.count)
    redis.call('HSET', body, 'o', h.open, 'st', h.state)
    append(body, 'a', h.applied, '')
  end
  if mode ~= '' and ttl > 0 then
    redis.call('EXPIRE', body, ttl)
  end
  if session_id ~= '' then
    -- The run's meta `v`: the session version of its last change (what a
    -- reader holding an older version asks again for); not data, out of dumps.
    redis.call('HSET', meta, 'v', bump(ns, session_id))
  end
end

-- Erasures last: a run this commit wrote into a deleted session goes too.
local function erase(ns, run_id)
  redis.call('DEL', ns .. 'meta:' .. run_id, ns .. 'run:' .. run_id)
  redis.call('SADD', ns .. 'erased', run_id)
end
local ndel = tonumber(ARGV[dels_at])
for j = dels_at + 1, dels_at + 2 * ndel, 2 do
  local ns, session_id = ARGV[j], ARGV[j + 1]
  local session = ns .. 'session:' .. session_id
  redis.call('SADD', ns .. 'deleted', session_id)
  redis.call('HDEL', ns .. 'cleared', session_id)
  redis.call('SREM', ns .. 'ended', session_id)
  bump(ns, session_id)
  for _, run_id in ipairs(redis.call('ZRANGE', session, 0, -1)) do
    erase(ns, run_id)
  end
  redis.call('DEL', session, ns .. 'owners:' .. session_id)
end
local erase_at = dels_at + 2 * ndel + 1
for j = erase_at + 1, erase_at + 2 * tonumber(ARGV[erase_at]), 2 do
  local ns, run_id = ARGV[j], ARGV[j + 1]
  local meta = redis.call('HMGET', ns .. 'meta:' .. run_id, 's', 'u')
  local session_id = meta[1]
  if session_id then
    if redis.call('ZREM', ns .. 'session:' .. session_id, run_id) == 1 and meta[2] then
      local owners = ns .. 'owners:' .. session_id
      if redis.call('HINCRBY', owners, meta[2], -1) <= 0 then
        redis.call('HDEL', owners, meta[2])
      end
    end
    bump(ns, session_id)
  end
  erase(ns, run_id)
end
local clears_at = erase_at + 2 * tonumber(ARGV[erase_at]) + 1
for j = clears_at + 1, clears_at + 3 * tonumber(ARGV[clears_at]), 3 do
  local ns, session_id = ARGV[j], ARGV[j + 1]
  if redis.call('SISMEMBER', ns .. 'deleted', session_id) == 0 then
    redis.call('HSET', ns .. 'cleared', session_id, ARGV[j + 2])
    bump(ns, session_id)
  end
end
local ends_at = clears_at + 3 * tonumber(ARGV[clears_at]) + 1
for j = ends_at + 1, ends_at + 2 * tonumber(ARGV[ends_at]), 2 do
  local ns, session_id = ARGV[j], ARGV[j + 1]
  if redis.call('SISMEMBER', ns .. 'deleted', session_id) == 0
      and redis.call('SADD', ns .. 'ended', session_id) == 1 then
    bump(ns, session_id)
  end
end
return {1, ''}
