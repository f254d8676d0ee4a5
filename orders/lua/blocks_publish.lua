-- Write the document of the purchase blocks in force, unless a newer one is there.
--
-- KEYS[1] {purchase-blocks}           the document every web process reads (orders/blocks.py)
-- KEYS[2] {purchase-blocks}:stamp     the stamp of the document written last
-- ARGV[1] the document (JSON)
-- ARGV[2] its stamp: taken (INCR) before its blocks were read from the database, so a
--         publish that read later has a larger one
--
-- Returns 1 when written, 0 when the document there was read later than this one: a block
-- created while an older publish was between its read and its write is never dropped.
assert(#KEYS == 2 and #ARGV == 2, "blocks_publish.lua takes 2 keys and 2 arguments")

if tonumber(redis.call("GET", KEYS[2]) or "0") >= tonumber(ARGV[2]) then
    return 0
end
redis.call("SET", KEYS[1], ARGV[1])
redis.call("SET", KEYS[2], ARGV[2])
return 1
