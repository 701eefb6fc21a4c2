-- First-come gate: install counters rebuilt from the store, unless loaded counters exist.
--
-- KEYS[1..3] as in gate_acquire.lua
-- KEYS[4] {coupon:<id>}:staging:<uuid>  hash user -> count written beforehand in chunks
--         (may be absent: nobody holds the coupon)
-- ARGV[1] issued total, ARGV[2] unix seconds at which the counters expire
--
-- Returns 1 if installed, 0 if loaded counters were already there (a concurrent loader won,
-- or grants happened since): those are newer than the store's snapshot and are kept.
local loaded = redis.call('EXISTS', KEYS[1]) == 1
if loaded then
  local issued = redis.call('GET', KEYS[2])
  if not issued then
    loaded = false
  elseif tonumber(issued) > 0 and redis.call('EXISTS', KEYS[3]) == 0 then
    loaded = false
  end
end
if loaded then
  redis.call('DEL', KEYS[4])
  return 0
end

redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SET', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('RENAME', KEYS[4], KEYS[3])
  redis.call('EXPIREAT', KEYS[3], ARGV[2])
end
redis.call('SET', KEYS[1], '1')
redis.call('EXPIREAT', KEYS[1], ARGV[2])
redis.call('EXPIREAT', KEYS[2], ARGV[2])
return 1
