-- Count in Redis a purchase the database-only path wrote as an order (orders/admission.py),
-- before its commit, under the sale's row lock: so Redis stops offering the units the database
-- sold, and a process still on the Redis path (a fleet switching paths, Redis back after an
-- outage) cannot sell them again.
--
-- KEYS[1] fs:{id}:remaining
-- KEYS[2] fs:{id}:buyers
-- KEYS[3] fs:{id}:admitted
-- ARGV[1] user id
-- ARGV[2] units
-- ARGV[3] the reservation id of the order
--
-- Returns 1 when counted; 0 when the shard is not loaded (its next load reads the order from
-- the database) or the request was admitted here already (Redis counts its units; the order
-- writer settles its entry against the database's order). In a sale of several stock shards
-- the caller first moves units here from the others when this shard offers fewer
-- (redis_sales.sale_borrow); should none be had, remaining goes below what the shard's waves hold
-- back, and the next reconcile gives the shard its allotment.
assert(#KEYS == 3, "taken_by_database.lua takes 3 keys")
assert(#ARGV == 3, "taken_by_database.lua takes 3 arguments")

if redis.call("EXISTS", KEYS[1]) == 0 or redis.call("HEXISTS", KEYS[3], ARGV[3]) == 1 then
    return 0
end
local units = tonumber(ARGV[2])
redis.call("DECRBY", KEYS[1], units)
redis.call("HINCRBY", KEYS[2], ARGV[1], units)
redis.call("HSET", KEYS[3], ARGV[3], units)
return 1
