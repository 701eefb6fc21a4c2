-- First-come gate: grant one unit of a coupon to a user, atomically.
--
-- KEYS[1] {coupon:<id>}:loaded  marker: the counters below were installed from the store
-- KEYS[2] {coupon:<id>}:issued  units granted so far (string integer)
-- KEYS[3] {coupon:<id>}:users   hash user id -> units that user holds
-- ARGV[1] total_quantity, ARGV[2] per_user_limit, ARGV[3] user id,
-- ARGV[4] unix seconds at which the counters expire (the coupon's expiry plus a margin)
--
-- Returns 0 granted, 1 sold out, 2 per-user limit reached, 3 unloaded.
--
-- "Loaded" means the marker and the counter exist, and the users hash exists whenever
-- something was issued: if any of them was evicted the gate cannot decide safely, so it
-- answers "unloaded" and the caller rebuilds the counters from the store (gate_load.lua
-- uses the same predicate).
if redis.call('EXISTS', KEYS[1]) == 0 then return 3 end
local issued = redis.call('GET', KEYS[2])
if not issued then return 3 end
issued = tonumber(issued)
if issued > 0 and redis.call('EXISTS', KEYS[3]) == 0 then return 3 end

local held = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0')
if held >= tonumber(ARGV[2]) then return 2 end
if issued >= tonumber(ARGV[1]) then return 1 end

redis.call('INCR', KEYS[2])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
-- The users hash may have been created just now (no user held the coupon at load time).
redis.call('EXPIREAT', KEYS[3], ARGV[4])
return 0
