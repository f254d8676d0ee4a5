-- Finish reservations the database now holds: acknowledge them, drop them from the stream
-- and from `pending`, and give back what Redis still holds for those that made no order.
--
-- KEYS[1] fs:{id}:remaining
-- KEYS[2] fs:{id}:buyers
-- KEYS[3] fs:{id}:stream
-- KEYS[4] fs:{id}:pending
-- ARGV[1] consumer group of the order writer
-- ARGV[2..] five per reservation: stream entry id, reservation id (or ""), user id,
--           units back on offer, units off the user's tally (either may be negative: the
--           entry stood for fewer units than an order the database path wrote for it)
--
-- Returns how many entries this call finished. An entry is finished once, whoever calls:
-- only the call whose XDEL removes it gives anything back, so a retried batch cannot return
-- units twice. Runs as one script, so a reconcile sees an entry either still in the stream
-- (its units in flight) or gone with its units given back, never half of it.
assert(#KEYS == 4, "reservations_done.lua takes 4 keys")
assert(#ARGV >= 1 and (#ARGV - 1) % 5 == 0, "reservations_done.lua takes a group and 5 arguments per entry")

local finished = 0
for i = 2, #ARGV, 5 do
    local entry, rid, user = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local units, tally = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
    redis.call("XACK", KEYS[3], ARGV[1], entry)
    if redis.call("XDEL", KEYS[3], entry) == 1 then
        finished = finished + 1
        if rid ~= "" then
            redis.call("HDEL", KEYS[4], rid)
        end
        if units ~= 0 and redis.call("EXISTS", KEYS[1]) == 1 then
            redis.call("INCRBY", KEYS[1], units)
        end
        if tally ~= 0 then
            local held = tonumber(redis.call("HGET", KEYS[2], user) or "0") - tally
            if held <= 0 then
                redis.call("HDEL", KEYS[2], user)
            else
                redis.call("HSET", KEYS[2], user, held)
            end
        end
    end
end
return finished
