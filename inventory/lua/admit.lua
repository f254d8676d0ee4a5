-- Admit one purchase attempt for a flash sale, atomically.
--
-- KEYS[1]  fs:{id}:meta       hash: starts_at, ends_at (microseconds since the epoch), limit, status,
--                             waves ("<opens at>:<units>,..." or "": see load_sale.lua)
-- KEYS[2]  fs:{id}:remaining  units still on offer
-- KEYS[3]  fs:{id}:buyers     hash: user id -> units the user holds in this sale
-- KEYS[4]  fs:{id}:stream     reservations for the order writer (XADD)
-- KEYS[5]  fs:{id}:pending    hash: reservation id -> 1 while it waits for the order writer
-- KEYS[6]  fs:{id}:admitted   hash: reservation id -> units, of every reservation this sale accepted
-- KEYS[7]  fs:{id}:idem:<user>:<key>  the first answer to this Idempotency-Key
-- KEYS[8]  fs:{id}:drain      short-lived flag: a drain task was just scheduled
-- KEYS[9]  fs:{id}:stats      hash: "<minute>:<outcome>" -> answers given, for the back office
-- KEYS[10] fs:{id}:blocked    set: user ids that may not buy (deactivated accounts)
-- KEYS[11] fs:{id}:answered   set: user ids with a first answer remembered here (see the sale gate)
-- KEYS[12] fs:{id}:gated      present while some process's sale gate answers for this shard; a
--                             user newly answered is then published on this key's name
-- KEYS[13..12+n] fs:{id}:rl:...  the purchase's shared rate limits (GCRA arrival times), if any
-- KEYS[13+n]   fs:{id}:rl:pass:... the uses of the purchase's pass (a GCRA bucket), when it carries one
-- ARGV[1] user id
-- ARGV[2] quantity (a positive integer)
-- ARGV[3] reservation id to use if the attempt is accepted (derived from the Idempotency-Key)
-- ARGV[4] seconds to remember the Idempotency-Key
-- ARGV[5] milliseconds during which one drain task covers every new reservation
-- ARGV[6] the request id, carried to the order writer's log lines
-- ARGV[7] 1 when too few units left is the answer (sold_out); 0 in one stock shard of several,
--         where it is `short`, neither remembered nor counted: the caller borrows units from
--         the sale's other shards and asks again
-- ARGV[8] n, the number of rate limits
-- ARGV[9..] two per rate limit, then two for the pass's uses: emission interval (microseconds),
--         burst (see gcra.lua)
--
-- Returns {outcome, reservation id ("" when none; rate_limited: which limit refused, 1-based),
-- schedule_drain (0/1), remembered quantity,
-- microseconds: to wait (rate_limited), or since the epoch when the next wave opens (wave)}.
-- outcome: accepted, sold_out, short, wave, limit_exceeded, not_started, ended, blocked,
-- not_loaded, rate_limited, pass_spent, or replay:<first outcome> when the request was seen
-- before (quantity tells what it asked for).
-- The order of the checks is the purchase's one order (purchase/admission.py says it whole):
-- the rate limits first, counting every request they let through, as the rate-limit middleware
-- does for other routes (one round trip does both); then a repeat of an earlier request gets
-- its first answer, whatever else has changed, its pass's uses spent or not; then the pass's
-- uses, one per new request; then the sale's own answer.
-- The decrement and the XADD happen together or not at all: no reservation without its
-- unit, no unit taken without a reservation. A reservation id is admitted at most once, even
-- after its Idempotency-Key expired: the repeat gets the first answer, not a second unit.
--!include limits/lua/gcra.lua
--!include inventory/lua/waves.lua
--!include inventory/lua/answered.lua
local limit_count = tonumber(ARGV[8])
local has_pass = #KEYS == 13 + limit_count
assert(#KEYS == 12 + limit_count or has_pass, "admit.lua takes 12 keys, its rate limits' and its pass's")
assert(#ARGV == 8 + 2 * (#KEYS - 12), "admit.lua takes 8 arguments and 2 per rate limit and pass")

local user, quantity, rid = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local limits = {}
for i = 13, 12 + limit_count do
    limits[#limits + 1] = KEYS[i]
end
local verdict, new_tats = gcra_check(limits, ARGV, 9, now)
if verdict[1] == 0 then
    return {"rate_limited", tostring(verdict[2]), 0, quantity, verdict[5]}
end
gcra_commit(limits, new_tats, now)

local first = redis.call("HMGET", KEYS[7], "outcome", "rid", "quantity")
if first[1] then
    return {"replay:" .. first[1], first[2], 0, tonumber(first[3]), 0}
end

local meta = redis.call("HMGET", KEYS[1], "starts_at", "ends_at", "limit", "status", "waves")
if not meta[1] then
    return {"not_loaded", "", 0, quantity, 0}
end

local function count(outcome)
    redis.call("HINCRBY", KEYS[9], math.floor(now / 60000000) .. ":" .. outcome, 1)
end

local function remember(outcome, reservation, units)
    redis.call("HSET", KEYS[7], "outcome", outcome, "rid", reservation, "quantity", units)
    redis.call("EXPIRE", KEYS[7], tonumber(ARGV[4]))
    answered(KEYS[11], KEYS[12], user)
end

local function answer(outcome, reservation, schedule)
    remember(outcome, reservation, quantity)
    count(outcome)
    return {outcome, reservation, schedule, quantity, 0}
end

local admitted = redis.call("HGET", KEYS[6], rid)
if admitted then
    remember("accepted", rid, admitted)
    return {"replay:accepted", rid, 0, tonumber(admitted), 0}
end

if has_pass then
    local pass = {KEYS[13 + limit_count]}
    local pass_verdict, pass_tats = gcra_check(pass, ARGV, 9 + 2 * limit_count, now)
    if pass_verdict[1] == 0 then
        return {"pass_spent", "", 0, quantity, 0}
    end
    gcra_commit(pass, pass_tats, now)
end

if redis.call("SISMEMBER", KEYS[10], user) == 1 then
    -- Not remembered: an account that is reactivated can use the same key.
    count("blocked")
    return {"blocked", "", 0, quantity, 0}
end
if meta[4] == "cancelled" or meta[4] == "ended" then
    return answer("ended", "", 0)
end

if now < tonumber(meta[1]) then
    return answer("not_started", "", 0)
end
if now >= tonumber(meta[2]) then
    return answer("ended", "", 0)
end

local held = tonumber(redis.call("HGET", KEYS[3], user) or "0")
if held + quantity > tonumber(meta[3]) then
    return answer("limit_exceeded", "", 0)
end
local remaining = tonumber(redis.call("GET", KEYS[2]) or "0")
-- Units of waves still to come stay in `remaining` but are not on offer: their wave opens by
-- this script's clock (Redis TIME), so no task opens it and no web server's clock opens it early.
-- Such a refusal is counted as sold out but not remembered: the same request may buy then.
local held_back, next_wave = waves_ahead(meta[5], now)
if remaining - held_back < quantity then
    if ARGV[7] == "0" then
        return {"short", "", 0, quantity, 0}
    end
    if next_wave > 0 then
        count("sold_out")
        return {"wave", "", 0, quantity, next_wave}
    end
    return answer("sold_out", "", 0)
end

redis.call("DECRBY", KEYS[2], quantity)
redis.call("HINCRBY", KEYS[3], user, quantity)
redis.call("XADD", KEYS[4], "*", "rid", rid, "user", user, "quantity", quantity, "req", ARGV[6])
redis.call("HSET", KEYS[5], rid, 1)
redis.call("HSET", KEYS[6], rid, quantity)
local schedule = redis.call("SET", KEYS[8], 1, "PX", tonumber(ARGV[5]), "NX") and 1 or 0
return answer("accepted", rid, schedule)
