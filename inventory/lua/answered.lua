-- A shopper with a first answer remembered in a stock shard (admit.lua, taken_by_database.lua)
-- joins the shard's `answered` set; while some process's sale gate answers for the shard (its
-- `gated` key lives), the shopper is announced on that key's name too. Such a gate sends the
-- shopper's repeats to Redis for their first answer instead of refusing them itself
-- (inventory/redis_sales/gate.py).
local function answered(answered_key, gated_key, user)
    if redis.call("SADD", answered_key, user) == 1 and redis.call("EXISTS", gated_key) == 1 then
        redis.call("PUBLISH", gated_key, user)
    end
end
