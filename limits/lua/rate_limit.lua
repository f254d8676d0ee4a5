-- Take one request from several token buckets at once (GCRA, see gcra.lua).
--
-- KEYS[i]     the theoretical arrival time (microseconds) of limit i, e.g. rl:write:user:42
-- ARGV[2i-1]  emission interval of limit i in microseconds (1 / rate)
-- ARGV[2i]    burst of limit i (requests that may arrive at once)
--
-- Returns {allowed (0/1), index of the tightest limit (1-based), its remaining requests,
-- microseconds until it is full again, microseconds to wait if refused}.
--!include limits/lua/gcra.lua
assert(#KEYS >= 1, "rate_limit.lua takes at least 1 key")
assert(#ARGV == 2 * #KEYS, "rate_limit.lua takes 2 arguments per key")

local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local verdict, new_tats = gcra_check(KEYS, ARGV, 1, now)
if verdict[1] == 1 then
    gcra_commit(KEYS, new_tats, now)
end
return verdict
