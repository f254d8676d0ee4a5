-- Compare a flash sale's Redis counters with the database and repair them toward it.
--
-- Called while the caller holds the sale's row lock in PostgreSQL, so no order is written
-- meanwhile; atomic here, so no admission interleaves.
--
-- KEYS[1] fs:{id}:meta
-- KEYS[2] fs:{id}:remaining
-- KEYS[3] fs:{id}:buyers
-- KEYS[4] fs:{id}:stream
-- KEYS[5] fs:{id}:blocked
-- ARGV[1] units the database holds as sold (non-cancelled orders)
-- ARGV[2] the units this shard may sell (the sale's quantity, in a sale of one shard): its
--         allotment from now on
-- ARGV[3] JSON object: user id -> units held in the database
-- ARGV[4] JSON object: for each reservation in the stream that the database has settled,
--         [units still held, tally still held, less]: 1 where Redis has yet to give it back, 0
--         where the database counts it (an order) or nothing comes back, less the units of an
--         order the database path wrote for it; unsettled ones hold both in full
-- ARGV[5] the sale's end (microseconds since the epoch) and ARGV[6] its per-user limit, as the
--         database holds them (an edit's wider terms may not have reached Redis)
-- ARGV[7] the sale's version: the counters now reflect it (see edit_sale.lua)
-- ARGV[8] JSON array: the accounts the database holds inactive, of this shard's shoppers
--
-- Returns {loaded (0/1), remaining before, expected, in-flight units, buyers repaired,
-- terms repaired (0/1)}.
assert(#KEYS == 5, "reconcile.lua takes 5 keys")
assert(#ARGV == 8, "reconcile.lua takes 8 arguments")

if redis.call("EXISTS", KEYS[1]) == 0 then
    return {0, -1, -1, 0, 0, 0}
end

local settled = cjson.decode(ARGV[4])

-- Reservations not yet in the database hold their units in Redis only; settled ones that
-- the writer has not finished hold what it is still to give back.
local held = cjson.decode(ARGV[3])
local in_flight = 0
for _, entry in ipairs(redis.call("XRANGE", KEYS[4], "-", "+")) do
    local fields = {}
    for i = 1, #entry[2], 2 do
        fields[entry[2][i]] = entry[2][i + 1]
    end
    local still = settled[fields.rid] or {1, 1, 0}
    local units = tonumber(fields.quantity)
    in_flight = in_flight + units * still[1] - still[3]
    held[fields.user] = (held[fields.user] or 0) + units * still[2] - still[3]
end

local before = tonumber(redis.call("GET", KEYS[2]) or "0")
local expected = tonumber(ARGV[2]) - tonumber(ARGV[1]) - in_flight
if expected < 0 then
    expected = 0
end
if before ~= expected then
    redis.call("SET", KEYS[2], expected)
end
redis.call("HSET", KEYS[1], "version", ARGV[7], "terms_version", ARGV[7], "allotment", ARGV[2])

local repaired = 0
local current = redis.call("HGETALL", KEYS[3])
for i = 1, #current, 2 do
    local user, units = current[i], tonumber(current[i + 1])
    if (held[user] or 0) ~= units then
        repaired = repaired + 1
        if (held[user] or 0) > 0 then
            redis.call("HSET", KEYS[3], user, held[user])
        else
            redis.call("HDEL", KEYS[3], user)
        end
    end
    held[user] = nil
end
for user, units in pairs(held) do
    if units > 0 then
        repaired = repaired + 1
        redis.call("HSET", KEYS[3], user, units)
    end
end
local terms = redis.call("HMGET", KEYS[1], "ends_at", "limit")
local terms_repaired = 0
if terms[1] ~= ARGV[5] or terms[2] ~= ARGV[6] then
    redis.call("HSET", KEYS[1], "ends_at", ARGV[5], "limit", ARGV[6])
    terms_repaired = 1
end
-- The accounts refused: an account deactivated without its service (which tells Redis), or
-- told while Redis was away, is refused here from now on.
local blocked = cjson.decode(ARGV[8])
local members = redis.call("SMEMBERS", KEYS[5])
local want = {}
for _, user in ipairs(blocked) do
    want[tostring(user)] = true
end
local same = #members == #blocked
for _, user in ipairs(members) do
    same = same and want[user] == true
end
if not same then
    redis.call("DEL", KEYS[5])
    for _, user in ipairs(blocked) do
        redis.call("SADD", KEYS[5], user)
    end
    terms_repaired = 1
end
return {1, before, expected, in_flight, repaired, terms_repaired}
