"""Admission answers counted by minute and outcome (admit.lua counts them in each shard)."""

from core.redis import redis_client
from inventory.redis_sales.keys import SaleKeys
from inventory.redis_sales.scripts import as_text


def _sale_outcome_counts(sale_id: int, shards: int) -> dict[int, dict[str, int]]:
    """Admission answers by minute since the epoch and outcome, as the admission script counts
    them in each shard."""
    counts: dict[int, dict[str, int]] = {}
    for keys in SaleKeys.all_of(sale_id, shards):
        for field, value in redis_client().hgetall(keys.stats).items():
            minute, outcome = as_text(field).split(":", 1)
            by_outcome = counts.setdefault(int(minute), {})
            by_outcome[outcome] = by_outcome.get(outcome, 0) + int(value)
    return counts


def sale_outcome_totals(sale_id: int, shards: int = 1) -> dict[str, int]:
    """Every admission answer of the sale so far, by outcome."""
    totals: dict[str, int] = {}
    for by_outcome in _sale_outcome_counts(sale_id, shards).values():
        for outcome, count in by_outcome.items():
            totals[outcome] = totals.get(outcome, 0) + count
    return dict(sorted(totals.items()))


def sale_outcomes_by_minute(sale_id: int, minutes: int, shards: int = 1) -> list[tuple[int, dict[str, int]]]:
    """Admission answers of the last `minutes` minutes: [(minute since the epoch, {outcome: n})]."""
    counts = _sale_outcome_counts(sale_id, shards)
    now_minute = int(redis_client().time()[0] // 60)
    return [(minute, counts.get(minute, {})) for minute in range(now_minute - minutes + 1, now_minute + 1)]
