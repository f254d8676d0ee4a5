-- Load a flash sale into Redis, or refresh its terms if it is loaded already.
--
-- KEYS[1] fs:{id}:meta
-- KEYS[2] fs:{id}:remaining
-- KEYS[3] fs:{id}:buyers
-- KEYS[4] fs:{id}:stream
-- ARGV[1] starts_at (microseconds since the epoch)
-- ARGV[2] ends_at (microseconds since the epoch)
-- ARGV[3] per-user limit
-- ARGV[4] status
-- ARGV[5] remaining units according to the database
-- ARGV[6] JSON object: user id -> units held according to the database
-- ARGV[7] consumer group of the order writer
--
-- Returns {loaded_now (0/1), remaining}. Counters of a loaded sale are never overwritten:
-- reservations still in the stream would be counted twice. The terms (window, limit,
-- status) are always refreshed, so a restock or an extension reaches Redis.
assert(#KEYS == 4, "load_sale.lua takes 4 keys")
assert(#ARGV == 7, "load_sale.lua takes 7 arguments")

local loaded_now = 0
if redis.call("EXISTS", KEYS[1]) == 0 then
    loaded_now = 1
    redis.call("DEL", KEYS[2], KEYS[3])
    redis.call("SET", KEYS[2], tonumber(ARGV[5]))
    for user, units in pairs(cjson.decode(ARGV[6])) do
        redis.call("HSET", KEYS[3], user, units)
    end
end
redis.call("HSET", KEYS[1], "starts_at", ARGV[1], "ends_at", ARGV[2], "limit", ARGV[3], "status", ARGV[4])

-- The writer's consumer group must exist before the first reservation arrives.
pcall(redis.call, "XGROUP", "CREATE", KEYS[4], ARGV[7], "0", "MKSTREAM")
return {loaded_now, tonumber(redis.call("GET", KEYS[2]))}
