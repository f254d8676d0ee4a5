-- A shopper joins a sale's waiting room, or asks for their place again, atomically.
--
-- KEYS[1] fs:{id}:queue:draw      sorted set: the early arrivals, scored by their draw number
-- KEYS[2] fs:{id}:queue:arrivals  hash: user id -> arrival number (early and late alike)
-- KEYS[3] fs:{id}:queue:late      hash: user id -> place among those who came after the start
-- KEYS[4] fs:{id}:queue:count     hash: "arrivals", "late" -> how many so far
-- KEYS[5] fs:{id}:meta            the sale's first shard's terms (see load_sale.lua)
-- ARGV[1] user id
-- ARGV[2] the user's draw number (below 2^52: a double holds it exactly)
-- ARGV[3] the sale's start, microseconds since the epoch
-- ARGV[4] "" or, for a sale not loaded yet, its end as the database has it (microseconds)
-- ARGV[5] milliseconds the line is kept after the sale's end (it is dropped with the sale's keys
--         when the sale closes; this bounds it should that never happen)
--
-- Returns {place in line (0 before the start: the draw has not happened), arrival number};
-- {-1, 0} when the sale is closed or over by Redis TIME (nothing is written: a line for a sale
-- that is over is none); {-2, 0} when the sale is not loaded and ARGV[4] is empty (the caller
-- asks the database and calls again).
-- Early or late is decided by Redis TIME, once, at the first arrival: coming back changes
-- nothing. After the start the early arrivals' order is their draw numbers' (the set's rank), and
-- the late ones follow in the order they came.
assert(#KEYS == 5 and #ARGV == 5, "queue_join.lua takes 5 keys and 5 arguments")

local user = ARGV[1]
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local started = now >= tonumber(ARGV[3])

local terms = redis.call("HMGET", KEYS[5], "ends_at", "status")
local ends_at = tonumber(terms[1] or ARGV[4])
if not terms[1] and ARGV[4] == "" then
    return {-2, 0}
end
if terms[2] == "cancelled" or terms[2] == "ended" or now >= ends_at then
    return {-1, 0}
end

local arrival = redis.call("HGET", KEYS[2], user)
if not arrival then
    arrival = redis.call("HINCRBY", KEYS[4], "arrivals", 1)
    redis.call("HSET", KEYS[2], user, arrival)
    if started then
        redis.call("HSET", KEYS[3], user, redis.call("HINCRBY", KEYS[4], "late", 1))
    else
        redis.call("ZADD", KEYS[1], ARGV[2], user)
    end
    -- The line lives as long as its sale, however far its end moves.
    local expires = math.floor(ends_at / 1000) + tonumber(ARGV[5])
    for i = 1, 4 do
        redis.call("PEXPIREAT", KEYS[i], expires)
    end
end
if not started then
    return {0, tonumber(arrival)}
end
local rank = redis.call("ZRANK", KEYS[1], user)
if rank then
    return {rank + 1, tonumber(arrival)}
end
return {redis.call("ZCARD", KEYS[1]) + tonumber(redis.call("HGET", KEYS[3], user)), tonumber(arrival)}
