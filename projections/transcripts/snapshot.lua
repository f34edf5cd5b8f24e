-- Read what a batch is folded from, in one call: partition positions and run heads.
-- KEYS[1] the generation's positions hash; KEYS[1+2i-1], KEYS[1+2i] meta and body of run i
-- ARGV    the position fields
-- Returns {positions..., then per run: {p, f, l, s, t} or false, body exists 0/1}
local out = {}
for i = 1, #ARGV do
  out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[i]) or '0'
end
for i = 2, #KEYS, 2 do
  local meta = redis.call('HMGET', KEYS[i], 'p', 'f', 'l', 's', 't')
  if meta[3] then
    out[#out + 1] = meta
  else
    out[#out + 1] = false
  end
  out[#out + 1] = redis.call('EXISTS', KEYS[i + 1])
end
return out
