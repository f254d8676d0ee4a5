-- Move units into or out of one stock shard of a sale: its offer and its allotment together.
--
-- KEYS[1] fs:{id}:meta       hash: ..., allotment (units of the sale this shard may sell),
--                            waves (the shard's own: see load_sale.lua), fence
-- KEYS[2] fs:{id}:remaining
-- ARGV[1] units to add; negative: units to take, or as many as are left if fewer
-- ARGV[2] the fencing token of the mover's lock (lock_acquire_fenced.lua)
--
-- Returns {units moved (negative when taken), fenced (0/1)}; {0, 0} when the shard is not
-- loaded. Taking never goes below zero left, so what a shard has admitted stays covered by its
-- allotment, nor takes units of the shard's waves still to come by Redis TIME: they open where
-- they were put. A token older than the shard's fence moves nothing (fenced: a newer holder of
-- the move lock, or a reconciliation, has counted what this shard holds); a newer one raises it.
--!include inventory/lua/waves.lua
assert(#KEYS == 2, "shift_units.lua takes 2 keys")
assert(#ARGV == 2, "shift_units.lua takes 2 arguments")

if redis.call("EXISTS", KEYS[2]) == 0 then
    return {0, 0}
end
local token, fence = tonumber(ARGV[2]), tonumber(redis.call("HGET", KEYS[1], "fence") or "0")
if token < fence then
    return {0, 1}
end
if token > fence then
    redis.call("HSET", KEYS[1], "fence", ARGV[2])
end
local units = tonumber(ARGV[1])
if units < 0 then
    local time = redis.call("TIME")
    local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
    local held_back = waves_ahead(redis.call("HGET", KEYS[1], "waves"), now)
    units = -math.min(-units, math.max(tonumber(redis.call("GET", KEYS[2])) - held_back, 0))
end
if units ~= 0 then
    redis.call("INCRBY", KEYS[2], units)
    redis.call("HINCRBY", KEYS[1], "allotment", units)
end
return {units, 0}
