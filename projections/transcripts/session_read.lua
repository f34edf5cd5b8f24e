-- A session's runs in order and their transcripts, read in one call (one round trip).
-- Contract: runwire.projections.transcripts.session_read; keys: .keys; body fields: .body.
--
-- KEYS[1]  the live pointer (<prefix>:tx:live)
-- ARGV[1]  the keyspace root with its colon (<prefix>:tx:)
-- ARGV[2]  the generation to read, or '' for the live one
-- ARGV[3]  the session id, or '' to list no session
-- ARGV[4]  how many of the session's newest runs to return messages for ('': all)
-- ARGV[5..] more run ids to return messages for
-- Returns  {generation, erased 0/1, width, listed, newest, more}
--          listed: per run of the session, oldest first: run_id, first ms, and when
--                  width is 4 its body's c and o (all asked: ARGV[4] '')
--          newest: when width is 2, c and o of each of the newest ARGV[4] runs
--          more:   c and o of each run of ARGV[5..]
--          (c and o are false when the body is absent: expired or unknown run)
--          An erased session (in the generation's `deleted` set) lists nothing.
--
-- The runs are read with SORT_RO ... BY nosort (a sorted set's own order) and
-- GET patterns: one command for all runs, where a redis.call per run cost
-- about twice the time in Redis. The first ms comes from each run's meta `t`
-- (what the session index scores it by, written in the same commit); when a
-- meta lacks it, or the key prefix holds a '*' (GET patterns substitute the
-- first one), the session index's scores and one HMGET per run are used.
-- Run key names are built here: fine on a standalone Redis, the supported
-- set-up; a Redis Cluster would need the keyspace in one hash slot.

local generation = ARGV[2]
if generation == '' then
  generation = redis.call('GET', KEYS[1]) or '0'
end
local base = ARGV[1] .. generation .. ':'
local session_id, tail = ARGV[3], ARGV[4]

local function bodies(run_ids)
  local out = {}
  for i = 1, #run_ids do
    local body = redis.call('HMGET', base .. 'run:' .. run_ids[i], 'c', 'o')
    out[#out + 1] = body[1]
    out[#out + 1] = body[2]
  end
  return out
end

local more = {}
for i = 5, #ARGV do
  more[#more + 1] = ARGV[i]
end
more = bodies(more)

local erased = 0
if session_id ~= '' and redis.call('SISMEMBER', base .. 'deleted', session_id) == 1 then
  erased = 1
  session_id = ''
end
if session_id == '' then
  return {tonumber(generation), erased, 2, {}, {}, more}
end

local index = base .. 'session:' .. session_id
local run, meta = base .. 'run:*', base .. 'meta:*->t'

-- The session's runs by SORT_RO; nil when it cannot serve (see above).
local function sorted()
  if string.find(base, '*', 1, true) then
    return nil
  end
  local listed
  if tail == '' then
    listed = redis.call('SORT_RO', index, 'BY', 'nosort', 'GET', '#', 'GET', meta,
      'GET', run .. '->c', 'GET', run .. '->o')
    for i = 2, #listed, 4 do
      if not listed[i] then
        return nil
      end
    end
    return {tonumber(generation), 0, 4, listed, {}, more}
  end
  listed = redis.call('SORT_RO', index, 'BY', 'nosort', 'GET', '#', 'GET', meta)
  for i = 2, #listed, 2 do
    if not listed[i] then
      return nil
    end
  end
  local n = #listed / 2
  local take = math.min(n, tonumber(tail))
  local newest = {}
  if take > 0 then
    newest = redis.call('SORT_RO', index, 'BY', 'nosort', 'LIMIT', n - take, take,
      'GET', run .. '->c', 'GET', run .. '->o')
  end
  return {tonumber(generation), 0, 2, listed, newest, more}
end

local reply = sorted()
if reply then
  return reply
end
local listed = redis.call('ZRANGE', index, 0, -1, 'WITHSCORES')
local n = #listed / 2
local from = 1
if tail ~= '' then
  from = math.max(1, n - tonumber(tail) + 1)
end
local wanted = {}
for i = from, n do
  wanted[#wanted + 1] = listed[2 * i - 1]
end
return {tonumber(generation), 0, 2, listed, bodies(wanted), more}
