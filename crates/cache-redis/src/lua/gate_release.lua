-- First-come gate: give back a grant whose issue could not be persisted.
--
-- KEYS as in gate_acquire.lua; ARGV[1] user id.
-- Returns 1 if a unit was given back, 0 if there was nothing to give back.
--
-- Both counters go down together and only if the user holds a unit: a spurious release must
-- not lower the total (that would let the gate grant more than the store will accept).
-- Unloaded counters are left alone: they will be rebuilt from the store, which never saw the
-- failed issue.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local issued = tonumber(redis.call('GET', KEYS[2]) or '0')
local held = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if held <= 0 then return 0 end
if held == 1 then
  redis.call('HDEL', KEYS[3], ARGV[1])
else
  redis.call('HINCRBY', KEYS[3], ARGV[1], -1)
end
if issued > 0 then redis.call('DECR', KEYS[2]) end
return 1
