-- Give units back to a flash sale in Redis: a failed reservation or a cancelled order.
--
-- KEYS[1] fs:{id}:meta
-- KEYS[2] fs:{id}:remaining
-- KEYS[3] fs:{id}:buyers
-- ARGV[1] user id
-- ARGV[2] units to give back
--
-- Returns the new remaining, or -1 when the sale is not loaded (the next load rebuilds it
-- from the database, which already counts the release).
assert(#KEYS == 3, "release.lua takes 3 keys")
assert(#ARGV == 2, "release.lua takes 2 arguments")

if redis.call("EXISTS", KEYS[1]) == 0 then
    return -1
end
local units = tonumber(ARGV[2])
local held = tonumber(redis.call("HGET", KEYS[3], ARGV[1]) or "0")
if held <= units then
    redis.call("HDEL", KEYS[3], ARGV[1])
else
    redis.call("HINCRBY", KEYS[3], ARGV[1], -units)
end
return redis.call("INCRBY", KEYS[2], units)
