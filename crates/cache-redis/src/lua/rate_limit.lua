-- Request budget: take one request from a GCRA budget (domain::rate_limit, same arithmetic).
--
-- KEYS[1] the budget's theoretical arrival time (TAT), integer microseconds of Redis' clock.
-- ARGV[1] interval between requests at the sustained rate (µs), ARGV[2] tolerance = interval
-- × burst (µs).
-- Returns 0 when the request fits (the TAT is moved), otherwise the µs to wait (nothing is
-- written).
--
-- Redis' own clock (TIME) is used, not the callers': every instance then measures against one
-- clock, and a skewed host cannot hand itself a fresh budget. Redis 7 replicates a script's
-- effects, so reading TIME before a write is allowed. The key expires when the budget is full
-- again: a full budget and a missing key mean the same, so memory holds only budgets in use.
-- Numbers stay below 2^53 (µs since 1970 are about 1.8e15) and are written with %.0f, because
-- Lua's default number format keeps only 14 digits.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - tolerance
if allowed_at > now then
  return allowed_at - now
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return 0
