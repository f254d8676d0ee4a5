"""The sale gate: each process remembers, briefly, that a sale is sold out, over or not open
yet, and answers the crowd behind without a Redis call.

A flag lives SALE_GATE_SECONDS (SALE_GATE_ENDED_SECONDS for an ended sale). When units come
back or a sale's terms change, `sale_gate_reopen` clears the flag in every process at once
through Redis pub/sub; should that message be lost, the flag still expires on its own, so a
restock reopens a sale everywhere within SALE_GATE_SECONDS at the latest.
"""

import logging
import threading
import time
from datetime import datetime

import redis
from django.conf import settings

from core.redis import redis_client
from inventory.redis_sales.outcomes import Outcome

logger = logging.getLogger(__name__)

CHANNEL = "fs:gate:reopen"
GATED_OUTCOMES = frozenset({Outcome.SOLD_OUT, Outcome.ENDED, Outcome.NOT_STARTED})


class SaleGate:
    def __init__(self):
        self._flags: dict[int, tuple[str, float]] = {}
        self._waves: dict[int, datetime] = {}  # sale id -> the next wave, while flagged sold out
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None

    def refusal(self, sale_id: int) -> str | None:
        """The refusal this process remembers for the sale, if it is still fresh."""
        self._ensure_listener()
        flag = self._flags.get(sale_id)
        if flag is None:
            return None
        outcome, until = flag
        if time.monotonic() >= until:
            self._flags.pop(sale_id, None)
            return None
        return outcome

    def next_wave_at(self, sale_id: int) -> datetime | None:
        """When the sale's next wave opens, if the flag is for units of waves to come."""
        return self._waves.get(sale_id)

    def close(self, sale_id: int, outcome: str, next_wave_at: datetime | None = None) -> None:
        """Remember a fresh refusal. `wave` (the units so far are gone, a wave is to come) is
        remembered as sold out until the wave at the latest, by this process's clock: an early
        expiry only sends the next request to Redis, whose clock opens the wave."""
        if outcome == "wave" and next_wave_at is not None:
            seconds = min(settings.SALE_GATE_SECONDS, max(0.0, next_wave_at.timestamp() - time.time()))
            self._flags[sale_id] = (Outcome.SOLD_OUT, time.monotonic() + seconds)
            self._waves[sale_id] = next_wave_at
            return
        if outcome not in GATED_OUTCOMES:
            return
        seconds = settings.SALE_GATE_ENDED_SECONDS if outcome == "ended" else settings.SALE_GATE_SECONDS
        self._flags[sale_id] = (outcome, time.monotonic() + seconds)
        self._waves.pop(sale_id, None)

    def open(self, sale_id: int) -> None:
        self._flags.pop(sale_id, None)
        self._waves.pop(sale_id, None)

    def clear(self) -> None:
        self._flags.clear()
        self._waves.clear()

    def _ensure_listener(self) -> None:
        # Started lazily, so that each forked web worker gets its own thread.
        if self._listener is not None and self._listener.is_alive():
            return
        with self._lock:
            if self._listener is None or not self._listener.is_alive():
                self._listener = threading.Thread(target=self._listen, name="sale-gate", daemon=True)
                self._listener.start()

    def _listen(self) -> None:
        backoff = 0.5
        while True:
            try:
                pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                backoff = 0.5
                while True:
                    message = pubsub.get_message(timeout=0.25)
                    if message:
                        self.open(int(message["data"]))
            except (redis.RedisError, ValueError):
                time.sleep(backoff)
                backoff = min(backoff * 2, 10)


sale_gate = SaleGate()


def sale_gate_reopen(sale_id: int) -> None:
    """Units came back or the terms changed: every process forgets its flag for the sale."""
    sale_gate.open(sale_id)
    try:
        redis_client().publish(CHANNEL, sale_id)
    except redis.RedisError:
        logger.warning("could not announce that sale %s reopened; flags expire by themselves", sale_id)
