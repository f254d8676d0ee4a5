-- Take in Redis a purchase the database-only path is writing as an order (purchase/database_path.py),
-- before its commit, under the sale's row lock: when Redis can be reached it stays the one gate
-- of the sale, so the two paths never admit past each other (a fleet switching paths, Redis
-- back after an outage), and Redis stops offering the units the database sold.
--
-- KEYS[1] fs:{id}:meta       hash: limit, waves (see load_sale.lua)
-- KEYS[2] fs:{id}:remaining
-- KEYS[3] fs:{id}:buyers
-- KEYS[4] fs:{id}:admitted
-- KEYS[5] fs:{id}:idem:<user>:<key>  the request's first answer, as admit.lua remembers it
-- KEYS[6] fs:{id}:answered, KEYS[7] fs:{id}:gated (see answered.lua)
-- ARGV[1] user id
-- ARGV[2] units
-- ARGV[3] the reservation id of the order
-- ARGV[4] seconds to remember the Idempotency-Key
--
-- Returns 1 when taken; 0 when the request was admitted here already (Redis counts its units;
-- the order writer settles its entry against the database's order); -3 when the shard is not
-- loaded (its next load reads the order from the database); -1 when this shard has fewer units on offer
-- (by the waves, as admit.lua counts them: the caller moves units here first in a sale of
-- several shards), -2 when the shopper would hold more than the limit: the database path
-- refuses then, as the Redis path would.
--!include inventory/lua/waves.lua
--!include inventory/lua/answered.lua
assert(#KEYS == 7, "taken_by_database.lua takes 7 keys")
assert(#ARGV == 4, "taken_by_database.lua takes 4 arguments")

local remaining = tonumber(redis.call("GET", KEYS[2]))
if not remaining then
    return -3
end
if redis.call("HEXISTS", KEYS[4], ARGV[3]) == 1 then
    return 0
end
local units = tonumber(ARGV[2])
local time = redis.call("TIME")
local meta = redis.call("HMGET", KEYS[1], "limit", "waves")
if remaining - waves_ahead(meta[2], tonumber(time[1]) * 1000000 + tonumber(time[2])) < units then
    return -1
end
if tonumber(redis.call("HGET", KEYS[3], ARGV[1]) or "0") + units > tonumber(meta[1]) then
    return -2
end
redis.call("DECRBY", KEYS[2], units)
redis.call("HINCRBY", KEYS[3], ARGV[1], units)
redis.call("HSET", KEYS[4], ARGV[3], units)
-- So that a repeat on the Redis path gets this answer wherever it asks, the sale gate's too.
redis.call("HSET", KEYS[5], "outcome", "accepted", "rid", ARGV[3], "quantity", units)
redis.call("EXPIRE", KEYS[5], tonumber(ARGV[4]))
answered(KEYS[6], KEYS[7], ARGV[1])
return 1
