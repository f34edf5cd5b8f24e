-- Read what a batch is folded from, in one call: partition positions, run heads,
-- and what is erased.
-- KEYS[1] the generation's positions hash, KEYS[2] its deleted sessions (set),
-- KEYS[3] its erased runs (set); KEYS[3+2i-1], KEYS[3+2i] meta and body of run i
-- ARGV    npos, the npos position fields, nsessions, the session ids to check,
--         then the run ids (in the order of their keys)
-- Returns {positions..., then per run: {p, f, l, s, t} or false, body exists 0/1,
--          then the deleted ones among the sessions asked and the runs' sessions,
--          then the erased ones among the runs}
local out = {}
local npos = tonumber(ARGV[1])
for i = 2, npos + 1 do
  out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[i]) or '0'
end
local nsessions = tonumber(ARGV[npos + 2])
local runs_at = npos + nsessions + 3
local deleted, seen, erased = {}, {}, {}
local function check(session_id)
  if session_id and not seen[session_id] then
    seen[session_id] = true
    if redis.call('SISMEMBER', KEYS[2], session_id) == 1 then
      deleted[#deleted + 1] = session_id
    end
  end
end
for i = 4, #KEYS, 2 do
  local meta = redis.call('HMGET', KEYS[i], 'p', 'f', 'l', 's', 't', 'u')
  if meta[3] then
    out[#out + 1] = meta
    check(meta[4])
  else
    out[#out + 1] = false
  end
  out[#out + 1] = redis.call('EXISTS', KEYS[i + 1])
  local run_id = ARGV[runs_at + (i - 4) / 2]
  if redis.call('SISMEMBER', KEYS[3], run_id) == 1 then
    erased[#erased + 1] = run_id
  end
end
for i = npos + 3, npos + nsessions + 2 do
  check(ARGV[i])
end
out[#out + 1] = deleted
out[#out + 1] = erased
return out
