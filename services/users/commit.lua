-- Settle a reservation: drop it, debit the real cost from the mirrored
-- balance, give back the tokens it reserved but did not use.
-- KEYS: res, bal, tpm (of the reservation's minute)
-- ARGV: id, cost, tokens_used
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local _, reserved = string.match(v, '^(%d+)|(%d+)|')
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DECRBY', KEYS[2], ARGV[2])
end
local unused = tonumber(reserved) - tonumber(ARGV[3])
if unused > 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('DECRBY', KEYS[3], unused)
end
return 1
