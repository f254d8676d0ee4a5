-- Raise a stock shard's fence to a move lock holder's token and read the shard, atomically.
--
-- KEYS[1] fs:{id}:meta       hash: ..., allotment, waves, fence (the newest fencing token seen)
-- KEYS[2] fs:{id}:remaining
-- ARGV[1] the fencing token of the caller's move lock (lock_acquire_fenced.lua)
--
-- Returns {remaining, allotment, waves} as they are once no older token can change them, or
-- {} when the shard is not loaded. Reconciliation and the rebuild of a lost shard read every
-- shard this way before they set allotments from what they read: a mover that stalled past its
-- lock (its take done, its give not) can then give nothing, so the units it took are counted
-- once, by what the shards hold (see shift_units.lua).
assert(#KEYS == 2, "shard_fence.lua takes 2 keys")
assert(#ARGV == 1, "shard_fence.lua takes 1 argument")

local remaining = redis.call("GET", KEYS[2])
if not remaining then
    return {}
end
local token = tonumber(ARGV[1])
if token > tonumber(redis.call("HGET", KEYS[1], "fence") or "0") then
    redis.call("HSET", KEYS[1], "fence", ARGV[1])
end
local meta = redis.call("HMGET", KEYS[1], "allotment", "waves")
return {tonumber(remaining), tonumber(meta[1] or "0"), meta[2] or ""}
