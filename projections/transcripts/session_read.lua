-- A session's runs in order and their transcripts, read in one call (one round trip).
-- Contract: runwire.projections.transcripts.session_read; keys: .keys; body fields: .body.
--
-- KEYS[1]  the live pointer (<prefix>:tx:live)
-- ARGV[1]  the keyspace root with its colon (<prefix>:tx:)
-- ARGV[2]  the generation to read, or '' for the live one
-- ARGV[3]  the session id, or '' to list no session
-- ARGV[4]  how many of the session's newest runs to return messages for ('': all)
-- ARGV[5..] more run ids to return messages for (after the session's)
-- Returns  {generation, erased 0/1, nlisted, nlisted x (run_id, score),
--           then per run asked: its body's c and o (false, false when absent)}
--          Messages follow the order asked: the session's newest runs oldest
--          first, then ARGV[5..]. An erased session (in the generation's
--          `deleted` set) lists nothing and returns no messages of its own.
--
-- Run key names are built here from the session index's members (they cannot
-- be known before it is read): fine on a standalone Redis, the supported
-- set-up; a Redis Cluster would need the keyspace in one hash slot.
-- Per run one HMGET of two fields: each redis.call costs, so nothing else is read.

local generation = ARGV[2]
if generation == '' then
  generation = redis.call('GET', KEYS[1]) or '0'
end
local base = ARGV[1] .. generation .. ':'
local out = {tonumber(generation), 0, 0}
local wanted = {}

local session_id = ARGV[3]
if session_id ~= '' and redis.call('SISMEMBER', base .. 'deleted', session_id) == 1 then
  out[2] = 1
  session_id = ''
end
if session_id ~= '' then
  local listed = redis.call('ZRANGE', base .. 'session:' .. session_id, 0, -1, 'WITHSCORES')
  local n = #listed / 2
  out[3] = n
  for i = 1, #listed do
    out[#out + 1] = listed[i]
  end
  local from = 1
  if ARGV[4] ~= '' then
    from = math.max(1, n - tonumber(ARGV[4]) + 1)
  end
  for i = from, n do
    wanted[#wanted + 1] = listed[2 * i - 1]
  end
end
for i = 5, #ARGV do
  wanted[#wanted + 1] = ARGV[i]
end

for i = 1, #wanted do
  local body = redis.call('HMGET', base .. 'run:' .. wanted[i], 'c', 'o')
  out[#out + 1] = body[1]
  out[#out + 1] = body[2]
end
return out
