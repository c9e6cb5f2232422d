-- Admit one request atomically: concurrency, budget (balance minus the
-- holds of active reservations), tokens and requests per minute.
-- KEYS: res, bal, tpm, rpm
-- ARGV: id, hold, tokens, now_ms, ttl_ms, max_concurrent, tpm_limit, rpm_limit
local res, bal, tpm, rpm = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id = ARGV[1]
local hold, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
local now, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local maxc, tpml, rpml = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])

-- The same request reserved twice (a retried call) is admitted once.
if redis.call('HEXISTS', res, id) == 1 then return 'OK' end
-- The caller loads the balance mirror from the database, then calls again.
if redis.call('EXISTS', bal) == 0 then return 'NO_BALANCE' end

local active, held = 0, 0
local all = redis.call('HGETALL', res)
for i = 1, #all, 2 do
  local h, _, exp = string.match(all[i + 1], '^(%d+)|(%d+)|(%d+)$')
  if tonumber(exp) <= now then
    redis.call('HDEL', res, all[i])
  else
    active = active + 1
    held = held + tonumber(h)
  end
end
if maxc > 0 and active >= maxc then return 'CONCURRENCY_LIMIT' end
if tonumber(redis.call('GET', bal) or '0') - held < hold then return 'BUDGET_EXHAUSTED' end
if tpml > 0 and tonumber(redis.call('GET', tpm) or '0') + tokens > tpml then return 'TOKENS_PER_MINUTE_LIMIT' end
if rpml > 0 and tonumber(redis.call('GET', rpm) or '0') + 1 > rpml then return 'REQUESTS_PER_MINUTE_LIMIT' end

redis.call('HSET', res, id, hold .. '|' .. tokens .. '|' .. (now + ttl))
redis.call('PEXPIRE', res, ttl)
redis.call('INCRBY', tpm, tokens)
redis.call('PEXPIRE', tpm, 120000)
redis.call('INCR', rpm)
redis.call('PEXPIRE', rpm, 120000)
return 'OK'
