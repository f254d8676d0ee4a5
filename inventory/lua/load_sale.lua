-- Load a flash sale into Redis, or refresh its terms if it is loaded already.
--
-- KEYS[1] fs:{id}:meta
-- KEYS[2] fs:{id}:remaining
-- KEYS[3] fs:{id}:buyers
-- KEYS[4] fs:{id}:stream
-- KEYS[5] fs:{id}:admitted
-- KEYS[6] fs:{id}:blocked
-- KEYS[7] fs:{id}:answered
-- ARGV[1] starts_at (microseconds since the epoch)
-- ARGV[2] ends_at (microseconds since the epoch)
-- ARGV[3] per-user limit
-- ARGV[4] status
-- ARGV[5] consumer group of the order writer
-- ARGV[6] "" or, to load the counters, a JSON object from the database:
--         {"remaining": n, "allotment": units this shard may sell, "held": {user: units},
--          "admitted": {reservation id: units}, "blocked": [user, ...], "answered": [the users of
--          those reservations, ...] (see answered.lua),
--          "version": the sale's version they reflect, "fence": the token of the move lock they
--          were computed under, so that no mover older than the rebuild moves units here}
-- ARGV[7] the waves, "<opens at, microseconds since the epoch>:<units>,..." in order, or "" when
--         every unit is on offer from the start (read by admit.lua)
-- ARGV[8] the sale's version the terms are of: read under the sale's row lock, so the newest
--         (see edit_sale.lua)
--
-- Returns {loaded_now (0/1), remaining}, or {-1, -1} when the sale is not loaded and ARGV[6]
-- is empty: the caller then reads the counters from the database and calls again. Counters of
-- a loaded sale are never overwritten: reservations still in the stream would be counted
-- twice. The terms are always refreshed, so a restock or an extension reaches Redis, except
-- that a closed sale stays closed: a load that read the status before a cancel or an end
-- must not reopen it.
assert(#KEYS == 7, "load_sale.lua takes 7 keys")
assert(#ARGV == 8, "load_sale.lua takes 8 arguments")

local loaded_now = 0
if redis.call("EXISTS", KEYS[2]) == 0 then
    if ARGV[6] == "" then
        return {-1, -1}
    end
    loaded_now = 1
    local counters = cjson.decode(ARGV[6])
    -- The blocked and answered sets are merged into, never replaced: an account deactivated
    -- after the caller read the blocked accounts was added here by its own service, after its
    -- commit, and a refusal remembered here has no row in the database.
    redis.call("DEL", KEYS[3], KEYS[5])
    redis.call("SET", KEYS[2], counters.remaining)
    redis.call("HSET", KEYS[1], "version", counters.version, "allotment", counters.allotment,
        "fence", counters.fence)
    for user, units in pairs(counters.held) do
        redis.call("HSET", KEYS[3], user, units)
    end
    for rid, units in pairs(counters.admitted) do
        redis.call("HSET", KEYS[5], rid, units)
    end
    for _, user in ipairs(counters.blocked) do
        redis.call("SADD", KEYS[6], user)
    end
    for _, user in ipairs(counters.answered) do
        redis.call("SADD", KEYS[7], user)
    end
end

local status = ARGV[4]
local current = redis.call("HGET", KEYS[1], "status")
if current == "cancelled" or current == "ended" then
    status = current
end
redis.call("HSET", KEYS[1], "starts_at", ARGV[1], "ends_at", ARGV[2], "limit", ARGV[3], "status", status,
    "waves", ARGV[7], "terms_version", ARGV[8])

-- The writer's consumer group must exist before the first reservation arrives.
pcall(redis.call, "XGROUP", "CREATE", KEYS[4], ARGV[5], "0", "MKSTREAM")
return {loaded_now, tonumber(redis.call("GET", KEYS[2]))}
