"""Where the keys of a sale's stock shards live: one slot per shard, the shards spread evenly
over the slot space (so over the primaries of a cluster that holds equal runs of slots)."""

import pytest
from redis.crc import key_slot

from inventory.redis_sales import SLOTS, SaleKeys, home_shard


def test_a_sale_of_one_shard_keeps_its_own_hash_tag():
    assert SaleKeys(42).remaining == "fs:{42}:remaining"
    assert SaleKeys.from_tag("42") == SaleKeys(42)


@pytest.mark.parametrize("shards", [2, 3, 6, 16, 64])
def test_each_shard_of_a_sale_lies_in_its_own_part_of_the_slot_space(shards):
    for sale_id in (1, 42, 987_654):
        for shard, keys in enumerate(SaleKeys.all_of(sale_id, shards)):
            slots = {
                key_slot(key.encode()) for key in (keys.meta, keys.remaining, keys.stream, keys.idempotency(7, "k"))
            }
            assert len(slots) == 1  # every key a script of the shard gets, in one slot
            assert shard * SLOTS // shards <= slots.pop() < (shard + 1) * SLOTS // shards
            tag = keys.remaining[keys.remaining.index("{") + 1 : keys.remaining.index("}")]
            assert SaleKeys.from_tag(tag) == keys


def test_a_shoppers_home_shard_is_the_same_every_time_and_shoppers_spread_evenly():
    homes = [home_shard(user_id, 3) for user_id in range(3000)]
    assert homes == [home_shard(user_id, 3) for user_id in range(3000)]
    assert [homes.count(shard) for shard in range(3)] == [1000, 1000, 1000]
