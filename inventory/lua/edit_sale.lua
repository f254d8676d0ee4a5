-- Apply an edit of a loaded sale's terms to one stock shard, atomically with the admissions.
--
-- KEYS[1] fs:{id}:meta       hash: ends_at, limit, allotment, version (the sale's version the
--                            counters reflect: set by a load or a reconcile), terms_version (the
--                            version the end and limit are of), edit:<v> (1 once the units of the
--                            edit that made version v are in)
-- KEYS[2] fs:{id}:remaining
-- KEYS[3] fs:{id}:buyers
-- ARGV[1] ends_at (microseconds since the epoch)
-- ARGV[2] per-user limit
-- ARGV[3] units to add to the offer (negative: to take off it)
-- ARGV[4] the step:
--         check    before the commit: would `narrow` be refused? Changes nothing.
--         narrow   before the commit: the narrower of the old and new terms (the caller passes
--                  them), the units taken off; refused as `check` would be
--         restore  before the commit, undoing a `narrow` in a shard whose edit another shard
--                  refused: the old terms back, the units given back (no check)
--         widen    after the commit: the edit's terms, unless Redis has newer ones, and its
--                  units added, once per version, unless the counters reflect it already (a
--                  reconcile or a rebuild from the database in between set them from the sale)
-- ARGV[5] the sale's version the terms are of: the edit's new version (narrow, widen), the
--         version before it (restore)
--
-- Returns 1 when applied (or, for check, would be), 0 when the sale is not loaded (the next
-- preheat loads the database's terms), 2 when Redis reflects the version already, -1 when fewer
-- units are left on offer than the edit takes off (the rest are sold or in flight), -2 when a
-- shopper already holds more than the new limit.
assert(#KEYS == 3, "edit_sale.lua takes 3 keys")
assert(#ARGV == 5, "edit_sale.lua takes 5 arguments")

if redis.call("EXISTS", KEYS[2]) == 0 then
    return 0
end
local step, delta, version = ARGV[4], tonumber(ARGV[3]), tonumber(ARGV[5])

local function set_terms()
    redis.call("HSET", KEYS[1], "ends_at", ARGV[1], "limit", ARGV[2], "terms_version", ARGV[5])
end

local function add_units()
    if delta ~= 0 then
        redis.call("INCRBY", KEYS[2], delta)
        redis.call("HINCRBY", KEYS[1], "allotment", delta)
    end
end

if step == "widen" then
    local meta = redis.call("HMGET", KEYS[1], "version", "terms_version", "edit:" .. ARGV[5])
    local counted = tonumber(meta[1] or "0")
    local applied = 2
    if version >= tonumber(meta[2] or meta[1] or "0") then
        set_terms()
        applied = 1
    end
    if version > counted and not meta[3] and delta ~= 0 then
        add_units()
        redis.call("HSET", KEYS[1], "edit:" .. ARGV[5], 1)
        applied = 1
    end
    return applied
end
if step == "restore" then
    set_terms()
    add_units()
    return 1
end

if delta < 0 and tonumber(redis.call("GET", KEYS[2])) < -delta then
    return -1
end
local limit = tonumber(ARGV[2])
for _, held in ipairs(redis.call("HVALS", KEYS[3])) do
    if tonumber(held) > limit then
        return -2
    end
end
if step == "narrow" then
    set_terms()
    add_units()
end
return 1
