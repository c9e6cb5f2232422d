-- Settle a reservation once: debit the real cost from the mirrored
-- balance, drop the reservation and give back the tokens it reserved but
-- did not use. A reservation that expired before its request ended is
-- still charged; one settled before is not settled again (the done
-- marker outlives the reservation).
-- KEYS: res, bal, tpm (of the reservation's minute), done
-- ARGV: id, cost, tokens_used, done_ttl_ms
-- Returns {1 (settled), 0 (settled, the reservation had expired) or 2
-- (settled before), the mirrored balance after (0 when not loaded)}.
local function after(n) return {n, tonumber(redis.call('GET', KEYS[2]) or '0')} end
if redis.call('EXISTS', KEYS[4]) == 1 then return after(2) end
redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DECRBY', KEYS[2], ARGV[2])
end
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return after(0) end
local _, reserved = string.match(v, '^(%d+)|(%d+)|')
redis.call('HDEL', KEYS[1], ARGV[1])
local unused = tonumber(reserved) - tonumber(ARGV[3])
if unused > 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('DECRBY', KEYS[3], unused)
end
return after(1)
