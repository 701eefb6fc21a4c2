-- Ranking: add one event's quantity deltas to a day's sorted set, once per event id.
--
-- KEYS[1] {ranking}:event:<event id>  de-duplication marker
-- KEYS[2] {ranking}:day:<YYYY-MM-DD>  sorted set product id -> net quantity
-- ARGV[1] unix seconds at which both expire (the day plus the retention)
-- ARGV[2..] product id, delta, product id, delta, ...
--
-- Returns 1 if counted, 0 if the event was already counted.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EXAT', ARGV[1]) then return 0 end
for i = 2, #ARGV, 2 do
  redis.call('ZINCRBY', KEYS[2], ARGV[i + 1], ARGV[i])
end
redis.call('EXPIREAT', KEYS[2], ARGV[1])
return 1
