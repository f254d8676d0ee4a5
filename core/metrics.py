"""The shop's own Prometheus metrics, and what the /metrics view exports.

Under granian and Celery, PROMETHEUS_MULTIPROC_DIR (set by `make run`) lets every process
write its samples to files that the view adds up, so any web process answers for them all.
"""

import functools
import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.multiprocess import MultiProcessCollector

PURCHASE_OUTCOMES = Counter("shop_purchase_outcomes_total", "Purchase attempts by how they were answered.", ["outcome"])


@functools.cache
def purchase_outcome(outcome: str) -> Counter:
    """The counter of one answer to purchases, resolved once: every purchase counts one."""
    return PURCHASE_OUTCOMES.labels(outcome)


REDIS_SCRIPT_SECONDS = Histogram(
    "shop_redis_script_seconds",
    "Time of one Lua script call.",
    ["script"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
WRITER_BATCH_SIZE = Histogram(
    "shop_order_writer_batch_size", "Reservations per order-writer batch.", buckets=(1, 5, 10, 50, 100, 250, 500, 1000)
)
WRITER_LAG_SECONDS = Histogram(
    "shop_order_writer_lag_seconds",
    "From a reservation's admission to its order's commit.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


# Gauges read from the database at scrape time (what is open right now): each app registers its
# own collectors here from its AppConfig.ready().
SCRAPE_TIME = CollectorRegistry()


def metrics_forget_dead_processes() -> None:
    """Stop counting the live gauges of processes that are gone: a web server's worker that died
    (granian tells no one, so each new worker looks when it starts)."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    live = [name for name in os.listdir(folder) if name.startswith("gauge_live")]
    pids = {int(name.removesuffix(".db").rsplit("_", 1)[1]) for name in live}
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid)
        except PermissionError:
            pass  # Alive, as someone else.


def metrics_exposition() -> bytes:
    """Every metric in Prometheus text format: all processes' samples, then the shop's state."""
    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    return generate_latest(registry) + generate_latest(SCRAPE_TIME)
