-- Generic cell rate algorithm (GCRA) over several limits at once, by Redis TIME: the functions
-- that rate_limit.lua and the purchase's admit.lua share (each includes this file).
--
-- gcra_check(keys, args, first_arg, now)
--   keys[i]                      the theoretical arrival time (microseconds) of limit i
--   args[first_arg + 2(i-1)]     emission interval of limit i in microseconds (1 / rate)
--   args[first_arg + 2(i-1) + 1] burst of limit i (requests that may arrive at once)
--   Returns {allowed (0/1), index of the tightest limit (1-based), its remaining requests,
--   microseconds until it is full again, microseconds to wait if refused}, and the new arrival
--   times to store. A request is admitted only if every limit admits it.
-- gcra_commit(keys, new_tats, now): store them (only for an admitted request, so that a refused
--   one costs nothing).

local function gcra_check(keys, args, first_arg, now)
    local tightest, tightest_remaining, tightest_reset, wait = 1, math.huge, 0, 0
    local new_tats = {}
    for i, key in ipairs(keys) do
        local interval = tonumber(args[first_arg + 2 * (i - 1)])
        local burst = tonumber(args[first_arg + 2 * (i - 1) + 1])
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
        return {0, tightest, 0, wait, wait}, new_tats
    end
    if #keys == 0 then
        return {1, 1, 0, 0, 0}, new_tats
    end
    return {1, tightest, tightest_remaining, tightest_reset, 0}, new_tats
end

local function gcra_commit(keys, new_tats, now)
    for i, key in ipairs(keys) do
        redis.call("SET", key, new_tats[i], "PX", math.ceil((new_tats[i] - now) / 1000) + 1)
    end
end
