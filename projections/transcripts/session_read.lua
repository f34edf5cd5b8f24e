-- A session's runs in order and their transcripts, read in one call (one round trip).
-- Contract: runwire.projections.transcripts.session_read; keys: .keys; body fields: .body.
--
-- KEYS[1]  the live pointer (<prefix>:tx:live)
-- ARGV[1]  the keyspace root with its colon (<prefix>:tx:)
-- ARGV[2]  the generation to read, or '' for the live one
-- ARGV[3]  the session id, or '' to list no session
-- ARGV[4]  what to list: '' every run with its messages, 'visible' every run
--          that began after the clear point with its messages, a number k the
--          newest k runs with their messages, 'ids' every run without messages
-- ARGV[5]  the session's '<generation>:<version>' the caller holds, or ''
-- ARGV[6]  the owner tag of the reader (meta `u`): only that owner's runs are
--          listed and counted; '' lists every run
-- ARGV[7]  the reader's tenant's segment of the generation's keys ('' or
--          t:<tenant>: , see keys.py): every key read is in that namespace
-- ARGV[8..] more run ids to return messages for
-- Returns  {generation, erased 0/1, width, total, listed, more, version, cleared, same 0/1,
--           ended 0/1}
--          version: the session's '<generation>:<version>' now (its `ver` field)
--          cleared: its clear point (ms) or ''; a 'visible' read lists only the
--                   runs that began after it
--          ended:  1 when the session ended (`session_ended` applied)
--          same:   1 when version is ARGV[5]: only the header (generation, erased,
--                  version, cleared) is returned (listed empty, total 0): the
--                  caller serves what it holds; 2 for a 'visible' read when
--                  ARGV[5] is an older version of this generation: listed holds
--                  only the runs changed since, total how many runs are visible
--          total:  how many runs the session index holds
--          listed: per run listed, oldest first: run_id, first ms, and when width
--                  is 4 its body's c and o
--          more:   c and o of each run of ARGV[8..]
--          (c and o are false when the body is absent: expired or unknown run)
--          An erased session (in the generation's `deleted` set) lists nothing.
--
-- The runs are read with SORT_RO ... BY nosort (a sorted set's own order) and
-- GET patterns: one command for all runs, where a redis.call per run cost
-- about a third more time in Redis. The first ms comes from each run's meta
-- `t` (what the session index scores it by, written in the same commit); when
-- a meta lacks it, or the key prefix holds a '*' (GET patterns substitute the
-- first one), the session index's scores and one HMGET per run are used.
-- Run key names are built here: fine on a standalone Redis, the supported
-- set-up; a Redis Cluster would need the keyspace in one hash slot.

local generation = ARGV[2]
if generation == '' then
  generation = redis.call('GET', KEYS[1]) or '0'
end
generation = tonumber(generation)
local base = ARGV[1] .. generation .. ':' .. ARGV[7]
local session_id, mode = ARGV[3], ARGV[4]

local function bodies(run_ids, out)
  for i = 1, #run_ids do
    local body = redis.call('HMGET', base .. 'run:' .. run_ids[i], 'c', 'o')
    out[#out + 1] = body[1]
    out[#out + 1] = body[2]
  end
  return out
end

-- Appends run_id, first ms and the run's body c and o to out.
local function with_body(out, run_id, first_ms)
  local body = redis.call('HMGET', base .. 'run:' .. run_id, 'c', 'o')
  out[#out + 1] = run_id
  out[#out + 1] = first_ms
  out[#out + 1] = body[1]
  out[#out + 1] = body[2]
end

local owner = ARGV[6]
local more = {}
for i = 8, #ARGV do
  more[#more + 1] = ARGV[i]
end
more = bodies(more, {})

local version, cleared, erased, ended = '', '', 0, 0
if session_id ~= '' then
  version = generation .. ':' .. (redis.call('HGET', base .. 'ver', session_id) or '0')
  cleared = redis.call('HGET', base .. 'cleared', session_id) or ''
  erased = redis.call('SISMEMBER', base .. 'deleted', session_id)
  ended = redis.call('SISMEMBER', base .. 'ended', session_id)
  if version == ARGV[5] then
    return {generation, erased, 2, 0, {}, more, version, cleared, 1, ended}
  end
end
if erased == 1 then
  session_id = ''
end
if session_id == '' then
  return {generation, erased, 2, 0, {}, more, version, cleared, 0, ended}
end

local index = base .. 'session:' .. session_id
local total = redis.call('ZCARD', index)

-- Runs of other owners in the session (written by someone who bypassed the
-- owner check): list only the reader's, run by run. The usual session, all
-- of whose runs are the reader's, takes the paths below unchanged.
if owner ~= '' and tonumber(redis.call('HGET', base .. 'owners:' .. session_id, owner) or '0') ~= total then
  local mine = {}
  local all = redis.call('ZRANGE', index, 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    if redis.call('HGET', base .. 'meta:' .. all[i], 'u') == owner then
      mine[#mine + 1] = {all[i], all[i + 1]}
    end
  end
  local first, width = 1, 4
  if mode == 'ids' then
    width = 2
  elseif mode == 'visible' then
    if cleared ~= '' then
      while first <= #mine and tonumber(mine[first][2]) <= tonumber(cleared) do
        first = first + 1
      end
    end
  elseif mode ~= '' then
    first = math.max(1, #mine - tonumber(mode) + 1)
  end
  local listed = {}
  for i = first, #mine do
    if width == 2 then
      listed[#listed + 1] = mine[i][1]
      listed[#listed + 1] = mine[i][2]
    else
      with_body(listed, mine[i][1], mine[i][2])
    end
  end
  return {generation, 0, width, #mine, listed, more, version, cleared, 0, ended}
end
local from, width = 0, 4 -- 0-based index of the first run listed
if mode == 'ids' then
  width = 2
elseif mode == 'visible' then
  if cleared ~= '' then
    -- Runs are scored by first ms: those at or before the clear point come first.
    from = redis.call('ZCOUNT', index, '-inf', cleared)
  end
elseif mode ~= '' then
  from = math.max(0, total - tonumber(mode))
end
if from >= total then
  return {generation, 0, width, total, {}, more, version, cleared, 0, ended}
end

-- A 'visible' read by a caller holding an older version of this generation:
-- only the runs changed since (their meta `v`, the session version of their
-- last change, above the one held), as (run_id, first ms, c, o); total is
-- then how many runs are visible. same is 2. (A run without `v` last changed
-- before versions were kept: before any version a caller can hold.)
local known_gen, known_ver = string.match(ARGV[5], '^(%d+):(%d+)$')
if mode == 'visible' and known_gen and tonumber(known_gen) == generation
    and not string.find(base, '*', 1, true) then
  local held = tonumber(known_ver)
  local listed = redis.call('SORT_RO', index, 'BY', 'nosort', 'LIMIT', from, total - from,
    'GET', '#', 'GET', base .. 'meta:*->t', 'GET', base .. 'meta:*->v')
  local changed, complete = {}, true
  for i = 1, #listed, 3 do
    if not listed[i + 1] then
      complete = false
      break
    end
    if tonumber(listed[i + 2] or '0') > held then
      with_body(changed, listed[i], listed[i + 1])
    end
  end
  if complete then
    return {generation, 0, 4, total - from, changed, more, version, cleared, 2, ended}
  end
end

-- The listed runs by SORT_RO; nil when it cannot serve (see above).
local function sorted()
  if string.find(base, '*', 1, true) then
    return nil
  end
  local run = base .. 'run:*'
  local args = {index, 'BY', 'nosort', 'LIMIT', from, total - from, 'GET', '#', 'GET', base .. 'meta:*->t'}
  if width == 4 then
    args[#args + 1] = 'GET'
    args[#args + 1] = run .. '->c'
    args[#args + 1] = 'GET'
    args[#args + 1] = run .. '->o'
  end
  local listed = redis.call('SORT_RO', unpack(args))
  for i = 2, #listed, width do
    if not listed[i] then
      return nil
    end
  end
  return listed
end

local listed = sorted()
if not listed then
  local scored = redis.call('ZRANGE', index, from, -1, 'WITHSCORES')
  if width == 2 then
    listed = scored
  else
    listed = {}
    for i = 1, #scored, 2 do
      with_body(listed, scored[i], scored[i + 1])
    end
  end
end
return {generation, 0, width, total, listed, more, version, cleared, 0, ended}
