-- Start (or resume) building a new generation of the transcript cache.
-- KEYS[1] live pointer, KEYS[2] building pointer, KEYS[3] generation counter
-- ARGV[1] '1' to restart (a new generation even if one is being built)
-- Returns {building, dropped}: dropped is the abandoned building generation, or -1.
local building = redis.call('GET', KEYS[2])
if building and ARGV[1] ~= '1' then
  return {tonumber(building), -1}
end
local live = tonumber(redis.call('GET', KEYS[1]) or '0')
local generation = redis.call('INCR', KEYS[3])
if generation <= live or (building and generation <= tonumber(building)) then
  generation = math.max(live, tonumber(building or '0')) + 1
  redis.call('SET', KEYS[3], generation)
end
redis.call('SET', KEYS[2], generation)
return {generation, tonumber(building or '-1')}
