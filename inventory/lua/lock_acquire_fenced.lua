-- Take a lock that fences: `SET key token NX PX ttl`, and a fencing token for the holder.
--
-- KEYS[1] the lock key
-- KEYS[2] the lock's last fencing token (same hash tag)
-- ARGV[1] the owner's token (for releasing and extending, as with any lock)
-- ARGV[2] time to live in milliseconds
--
-- Returns 0 when someone else holds the lock, else the fencing token: Redis TIME in microseconds,
-- or one more than the last token if the clock has not moved past it. Tokens only grow, so a
-- holder whose lock expired under it (a stalled process) carries a token older than the next
-- holder's, which every script it then calls refuses (see shift_units.lua). Should the last
-- token be lost with its key, the clock still gives a newer one.
assert(#KEYS == 2, "lock_acquire_fenced.lua takes 2 keys")
assert(#ARGV == 2, "lock_acquire_fenced.lua takes 2 arguments")

if not redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", tonumber(ARGV[2])) then
    return 0
end
local time = redis.call("TIME")
local token = tonumber(time[1]) * 1000000 + tonumber(time[2])
local last = tonumber(redis.call("GET", KEYS[2]) or "0")
if token <= last then
    token = last + 1
end
-- Kept a day from the last holder: should it expire, the clock still gives newer tokens.
redis.call("SET", KEYS[2], token, "PX", 86400000)
return token
