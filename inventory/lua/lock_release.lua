-- Release a lock only if the caller still owns it.
--
-- KEYS[1] the lock key
-- ARGV[1] the owner's token
--
-- Returns 1 if released, 0 if the lock had expired or belongs to someone else.
assert(#KEYS == 1, "lock_release.lua takes 1 key")
assert(#ARGV == 1, "lock_release.lua takes 1 argument")

if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
