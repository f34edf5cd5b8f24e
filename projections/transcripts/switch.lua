-- Make the building generation live when it has caught up, atomically for readers.
-- KEYS[1] live pointer, KEYS[2] building pointer,
-- KEYS[3] live positions hash, KEYS[4] building positions hash
-- ARGV[1] the building generation the caller built, ARGV[2] the live one it read
-- Returns the old live generation (to drop); -1 when the copy is behind or is
-- not the building one; -2 when the live generation changed (read it again).
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return -1
end
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[2] then
  return -2
end
local live = redis.call('HGETALL', KEYS[3])
for i = 1, #live, 2 do
  local built = tonumber(redis.call('HGET', KEYS[4], live[i]) or '0')
  if built < tonumber(live[i + 1]) then
    return -1
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return tonumber(ARGV[2])
