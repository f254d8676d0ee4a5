-- Extend a lock only if the caller still owns it.
--
-- KEYS[1] the lock key
-- ARGV[1] the owner's token
-- ARGV[2] new time to live in milliseconds
--
-- Returns 1 if extended, 0 if the lock had expired or belongs to someone else.
assert(#KEYS == 1, "lock_extend.lua takes 1 key")
assert(#ARGV == 2, "lock_extend.lua takes 2 arguments")

if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("PEXPIRE", KEYS[1], tonumber(ARGV[2]))
end
return 0
