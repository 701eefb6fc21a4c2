-- Ranking: the best products over several days.
--
-- KEYS[1..n]     {ranking}:day:<date>:built  markers, one per day
-- KEYS[n+1..2n]  {ranking}:day:<date>        sorted sets, same order
-- KEYS[2n+1]     {ranking}:tmp:<uuid>        scratch key, deleted before returning
-- ARGV[1] n, ARGV[2] limit (>= 1)
--
-- Returns {0, {i, ...}} with the 0-based indexes of the days never built, or
-- {1, {member, score, ...}}: every product whose summed quantity is positive and at least the
-- limit-th best score. Ties at the cut are all returned so that the caller can break them by
-- the lower product id (Redis orders equal scores by the member string, "10" before "9").
local n = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local missing = {}
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 0 then missing[#missing + 1] = i - 1 end
end
if #missing > 0 then return {0, missing} end

local tmp = KEYS[2 * n + 1]
redis.call('ZUNIONSTORE', tmp, n, unpack(KEYS, n + 1, 2 * n))
redis.call('ZREMRANGEBYSCORE', tmp, '-inf', '0')
local cut = redis.call('ZREVRANGE', tmp, limit - 1, limit - 1, 'WITHSCORES')
local out
if #cut == 0 then
  out = redis.call('ZRANGE', tmp, 0, -1, 'WITHSCORES')
else
  out = redis.call('ZRANGEBYSCORE', tmp, cut[2], '+inf', 'WITHSCORES')
end
redis.call('DEL', tmp)
return {1, out}
