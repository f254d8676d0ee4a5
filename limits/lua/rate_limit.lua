-- Generic cell rate algorithm (GCRA) over several limits at once, by Redis TIME.
--
-- KEYS[i]     the theoretical arrival time (microseconds) of limit i, e.g. rl:purchase:user:42
-- ARGV[2i-1]  emission interval of limit i in microseconds (1 / rate)
-- ARGV[2i]    burst of limit i (requests that may arrive at once)
--
-- A request is admitted only if every limit admits it; only then are they all advanced, so a
-- refused request costs nothing. Returns {allowed (0/1), index of the tightest limit (1-based),
-- its remaining requests, microseconds until it is full again, microseconds to wait if refused}.
assert(#KEYS >= 1, "rate_limit.lua takes at least 1 key")
assert(#ARGV == 2 * #KEYS, "rate_limit.lua takes 2 arguments per key")

local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local tightest, tightest_remaining, tightest_reset, wait = 1, math.huge, 0, 0
local new_tats = {}
for i, key in ipairs(KEYS) do
    local interval = tonumber(ARGV[2 * i - 1])
    local burst = tonumber(ARGV[2 * i])
    local tat = math.max(tonumber(redis.call("GET", key) or now), now)
    local new_tat = tat + interval
    local allow_at = new_tat - burst * interval
    if now < allow_at then
        if allow_at - now > wait then
            wait, tightest = allow_at - now, i
        end
    else
        new_tats[i] = new_tat
        local remaining = math.floor((now - allow_at) / interval)
        if wait == 0 and remaining < tightest_remaining then
            tightest, tightest_remaining, tightest_reset = i, remaining, new_tat - now
        end
    end
end

if wait > 0 then
    return {0, tightest, 0, wait, wait}
end
for i, key in ipairs(KEYS) do
    redis.call("SET", key, new_tats[i], "PX", math.ceil((new_tats[i] - now) / 1000) + 1)
end
return {1, tightest, tightest_remaining, tightest_reset, 0}
