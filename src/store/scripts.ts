/**
 * Lua scripts of the Redis store: each runs atomically on the server, so no two instances can both
 * see room for the last slot (check-then-reserve in one step, never read-then-write from Node).
 * They mirror MemoryStore.admitNow/settleNow exactly; the contract tests run both.
 *
 * Keys of one endpoint share a `{hash tag}` so a Redis Cluster keeps them in one slot.
 *   KEYS[1] leases  ZSET lease id -> expiry (ms)
 *   KEYS[2] window  ZSET reservation id -> admission time (ms)
 *   KEYS[3] tokens  HASH reservation id -> tokens, and `_sum` (tokens in the window)
 *   KEYS[4] budget  STRING tokens charged in the current budget period
 */

// Shared by both scripts: drop expired leases and window entries (in batches: unpack() has a stack limit).
const TRIM = `
local function trim(now, win)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  while true do
    local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - win, 'LIMIT', 0, 500)
    if #old == 0 then break end
    local vals = redis.call('HMGET', KEYS[3], unpack(old))
    local freed = 0
    for _, v in ipairs(vals) do if v then freed = freed + tonumber(v) end end
    if freed ~= 0 then redis.call('HINCRBY', KEYS[3], '_sum', -freed) end
    redis.call('HDEL', KEYS[3], unpack(old))
    redis.call('ZREM', KEYS[2], unpack(old))
  end
end
`

/** ARGV: now, id, windowMs, leaseTtlMs, concurrency, rpm, tpm, budget, budgetPeriodEnd, tokens, budgetTtlMs (-1 = no limit). */
export const ADMIT = `${TRIM}
local now = tonumber(ARGV[1])
local id = ARGV[2]
local win = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local conc = tonumber(ARGV[5])
local rpm = tonumber(ARGV[6])
local tpm = tonumber(ARGV[7])
local budget = tonumber(ARGV[8])
local periodEnd = tonumber(ARGV[9])
local tokens = tonumber(ARGV[10])
local budgetTtl = tonumber(ARGV[11])
trim(now, win)
if conc >= 0 and redis.call('ZCARD', KEYS[1]) >= conc then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, 'concurrency', math.max(1, tonumber(first[2]) - now)}
end
if rpm >= 0 then
  local n = redis.call('ZCARD', KEYS[2])
  if n >= rpm then
    local e = redis.call('ZRANGE', KEYS[2], n - rpm, n - rpm, 'WITHSCORES')
    return {0, 'requests', math.max(1, tonumber(e[2]) + win - now)}
  end
end
local windowTokens = tokens
if tpm >= 0 then
  if windowTokens > tpm then windowTokens = tpm end
  local sum = tonumber(redis.call('HGET', KEYS[3], '_sum') or '0')
  if sum > 0 and sum + windowTokens > tpm then
    local retry = win
    local freed = 0
    local start = 0
    local found = false
    while not found do
      local page = redis.call('ZRANGE', KEYS[2], start, start + 199, 'WITHSCORES')
      if #page == 0 then break end
      local ids = {}
      for i = 1, #page, 2 do ids[#ids + 1] = page[i] end
      local vals = redis.call('HMGET', KEYS[3], unpack(ids))
      for j, v in ipairs(vals) do
        if v then freed = freed + tonumber(v) end
        if sum - freed + windowTokens <= tpm then
          retry = tonumber(page[j * 2]) + win - now
          found = true
          break
        end
      end
      start = start + 200
    end
    return {0, 'tokens', math.max(1, retry)}
  end
end
if budget >= 0 then
  local used = tonumber(redis.call('GET', KEYS[4]) or '0')
  if used >= budget then
    return {0, 'budget', math.max(1, periodEnd - now)}
  end
end
if conc >= 0 then
  redis.call('ZADD', KEYS[1], now + ttl, id)
  redis.call('PEXPIRE', KEYS[1], ttl * 2)
end
if rpm >= 0 or tpm >= 0 then
  redis.call('ZADD', KEYS[2], now, id)
  redis.call('HSET', KEYS[3], id, windowTokens)
  redis.call('HINCRBY', KEYS[3], '_sum', windowTokens)
  redis.call('PEXPIRE', KEYS[2], win * 2)
  redis.call('PEXPIRE', KEYS[3], win * 2)
end
if budget >= 0 then
  redis.call('INCRBY', KEYS[4], tokens)
  redis.call('PEXPIRE', KEYS[4], budgetTtl)
end
return {1}
`

/** ARGV: id, used (window tokens, capped like at admission), budgetDelta (used - estimate, 0 when no budget). */
export const SETTLE = `
local id = ARGV[1]
local used = tonumber(ARGV[2])
local delta = tonumber(ARGV[3])
redis.call('ZREM', KEYS[1], id)
local cur = redis.call('HGET', KEYS[3], id)
if cur then
  redis.call('HSET', KEYS[3], id, used)
  redis.call('HINCRBY', KEYS[3], '_sum', used - tonumber(cur))
end
if delta ~= 0 then
  local b = redis.call('GET', KEYS[4])
  if b then
    local v = tonumber(b) + delta
    if v < 0 then v = 0 end
    redis.call('SET', KEYS[4], v, 'KEEPTTL')
  end
end
return 1
`

/** ARGV: id, expiry, key TTL. Only an existing lease is extended (XX): a released one stays released. */
export const RENEW = `
if redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[2], ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
`
