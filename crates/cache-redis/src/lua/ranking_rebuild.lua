-- Ranking: replace a day's sorted set with totals from the store's roll-up, mark it built.
--
-- KEYS[1] {ranking}:day:<date>, KEYS[2] {ranking}:day:<date>:built
-- ARGV[1] unix seconds at which both expire
-- ARGV[2..] product id, quantity, ...
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do
  if tonumber(ARGV[i + 1]) ~= 0 then
    redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
  end
end
redis.call('SET', KEYS[2], '1', 'EXAT', ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('EXPIREAT', KEYS[1], ARGV[1]) end
return 1
