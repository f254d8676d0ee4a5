-- Apply an edit of a loaded sale's terms, atomically with the admissions.
--
-- KEYS[1] fs:{id}:meta
-- KEYS[2] fs:{id}:remaining
-- KEYS[3] fs:{id}:buyers
-- ARGV[1] ends_at (microseconds since the epoch)
-- ARGV[2] per-user limit
-- ARGV[3] units to add to the offer (negative: to take off it)
-- ARGV[4] "" before the edit's commit; after it, the sale's version the edit made: the units
--         are added only if Redis's counters do not reflect that version already (a reconcile
--         or a rebuild from the database in between set them from the committed sale)
--
-- Returns 1 when applied, 0 when the sale is not loaded (the next preheat loads the database's
-- terms), 2 when Redis reflects the version already, -1 when fewer units are left on offer
-- than the edit takes off (the rest are sold or in flight), -2 when a shopper already holds
-- more than the new limit.
assert(#KEYS == 3, "edit_sale.lua takes 3 keys")
assert(#ARGV == 4, "edit_sale.lua takes 4 arguments")

if redis.call("EXISTS", KEYS[2]) == 0 then
    return 0
end
if ARGV[4] ~= "" and tonumber(redis.call("HGET", KEYS[1], "version") or "0") >= tonumber(ARGV[4]) then
    return 2
end
local delta = tonumber(ARGV[3])
if delta < 0 and tonumber(redis.call("GET", KEYS[2])) < -delta then
    return -1
end
local limit = tonumber(ARGV[2])
for _, held in ipairs(redis.call("HVALS", KEYS[3])) do
    if tonumber(held) > limit then
        return -2
    end
end
redis.call("HSET", KEYS[1], "ends_at", ARGV[1], "limit", ARGV[2])
if ARGV[4] ~= "" then
    redis.call("HSET", KEYS[1], "version", ARGV[4])
end
if delta ~= 0 then
    redis.call("INCRBY", KEYS[2], delta)
    redis.call("HINCRBY", KEYS[1], "allotment", delta)
end
return 1
