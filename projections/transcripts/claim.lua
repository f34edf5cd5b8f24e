-- Take the claim on a run: the right to append to it next.
-- Contract: runwire.projections.transcripts.claims; keys: .keys; body fields: .body.
--
-- KEYS[1]  the live pointer (<prefix>:tx:live)
-- KEYS[2]  the run's claim (<prefix>:tx:claim:<run_id>, a tenant's run's
--          <prefix>:tx:t:<tenant>:claim:<run_id>), a hash: w the writer,
--          o the last offset of its append, or '-' while it is in flight, f the
--          `pos` field of the append's partition
-- ARGV[1]  the keyspace root with its colon (<prefix>:tx:)
-- ARGV[2]  the run id
-- ARGV[3]  this writer's id
-- ARGV[4]  the claim's lifetime (ms)
-- ARGV[5]  the run's tenant's segment of the generation's keys ('' or
--          t:<tenant>: , see keys.py): the run is read in that namespace
-- Returns  {taken 0/1, last, c, o, mine, previous writer, offset and field}
--          last:  the run's last offset the cache applied (meta `l`), -1 unknown
--          c, o:  the run's stored messages (false when the body is absent)
--          mine:  the offset of this writer's own earlier append when the cache
--                 has not processed it yet (then that append is the run's state), or ''
--
-- A claim held by another writer whose append the cache has not processed
-- (its partition's position not past o, or still in flight) is busy: nobody
-- else may plan on the run until the cache has applied that append - or
-- refused it, which moves the position too but not the run. Otherwise the claim is taken, marked
-- in flight, and the run's state comes back in the same script, so what the
-- caller checks its write against is exactly what the cache holds.
local generation = redis.call('GET', KEYS[1]) or '0'
local base = ARGV[1] .. generation .. ':'
local ns = base .. ARGV[5]
local last = tonumber(redis.call('HGET', ns .. 'meta:' .. ARGV[2], 'l') or '-1')
local held = redis.call('HMGET', KEYS[2], 'w', 'o', 'f')
local writer, offset = held[1], held[2]
local mine = ''
if writer then
  local unapplied = offset == '-'
  if not unapplied then
    local position = tonumber(redis.call('HGET', base .. 'pos', held[3] or '') or '0')
    unapplied = position <= tonumber(offset)
  end
  if writer ~= ARGV[3] then
    if unapplied then
      return {0, last, false, false, '', writer, offset, held[3] or ''}
    end
  elseif offset == '-' then
    -- Our own append whose outcome we did not learn (a failed publish): it
    -- may still land, so nobody (not even we) plans on the run until the
    -- claim lapses.
    return {0, last, false, false, '', writer, offset, held[3] or ''}
  elseif unapplied then
    mine = offset
  end
end
redis.call('HSET', KEYS[2], 'w', ARGV[3], 'o', '-')
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local body = redis.call('HMGET', ns .. 'run:' .. ARGV[2], 'c', 'o')
return {1, last, body[1], body[2], mine, writer or '', offset or '', held[3] or ''}
