"""The sale gate: each process remembers, briefly, that a sale is sold out, over or not open
yet, and answers the crowd behind without a Redis call.

A flag lives SALE_GATE_SECONDS (SALE_GATE_ENDED_SECONDS for an ended sale). When units come
back or a sale's terms change, `sale_gate_reopen` clears the flag in every process at once
through Redis pub/sub; should that message be lost, the flag still expires on its own, so a
restock reopens a sale everywhere within SALE_GATE_SECONDS at the latest.

A refused request may be the repeat of one that had an answer, which it must get again: above
all an accepted purchase. So when the gate closes a sale as sold out or not started, it reads
which shoppers have a first answer remembered in the sale (each shard's `answered` set, kept by
answered.lua) and marks each shard `gated`; while a mark lives, every shopper newly answered is
published on the mark's name. A shopper the gate knows of is sent to Redis for their first
answer; any other is a newcomer, and gets the flag's refusal with no round trip at all. Those
it must know of are few: the sale's buyers (bounded by its quantity) and the shoppers refused
while some process's gate was open.

The gate reads its subscription in the request that is about to trust a flag, not in a thread
of its own: whatever Redis had sent it before the request came is heard before the request is
answered. A subscription that broke may have lost messages, and one redis-py made again
announces itself: either way the gate forgets all it knew.
"""

import contextlib
import logging
import os
import select
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import redis
from django.conf import settings

from core.redis import redis_client
from inventory.redis_sales.keys import SaleKeys
from inventory.redis_sales.outcomes import Outcome

logger = logging.getLogger(__name__)

CHANNEL = "fs:gate:reopen"
GATED_CHANNELS = SaleKeys(0).gated.replace("{0}", "*")  # every shard's `gated` key
GATED_OUTCOMES = frozenset({Outcome.SOLD_OUT, Outcome.ENDED, Outcome.NOT_STARTED})
# A `gated` mark outlives the flags it serves by this much, so that no answer it should have
# announced goes unheard while the gate still trusts what it knows.
GATED_MARGIN_SECONDS = 2.0
# How often a process with a subscription reads it even when it trusts no flag, so that what
# is published meanwhile does not pile up in Redis.
HEAR_SECONDS = 1.0


@dataclass
class Answered:
    """The shoppers with a first answer remembered in a sale, as far as this process knows, and
    until when it knows (the `gated` marks' life, by this process's clock)."""

    users: set[int] = field(default_factory=set)
    until: float = 0.0


class SaleGate:
    def __init__(self):
        self._flags: dict[int, tuple[str, float]] = {}
        self._waves: dict[int, datetime] = {}  # sale id -> the next wave, while flagged sold out
        self._answered: dict[int, Answered] = {}
        self._channels: dict[str, int] = {}  # a `gated` key -> its sale
        self._pubsub: redis.client.PubSub | None = None
        self._polled: tuple[object, select.poll] | None = None  # the subscription's socket, polled
        self._hear_by = 0.0
        self._lock = threading.RLock()

    def refusal(self, sale_id: int) -> str | None:
        """The refusal this process remembers for the sale, if it is still fresh."""
        if self._pubsub is not None and (sale_id in self._flags or time.monotonic() >= self._hear_by):
            self._hear()
        flag = self._flags.get(sale_id)
        if flag is None:
            return None
        outcome, until = flag
        if time.monotonic() >= until:
            self._flags.pop(sale_id, None)
            return None
        return outcome

    def is_newcomer(self, sale_id: int, user_id: int) -> bool:
        """Whether the shopper surely has no first answer remembered in the sale, so that the
        flag's refusal is their whole answer (ask after `refusal`, which hears the news). Never
        for an ended sale, whose repeats may need the database."""
        answered = self._answered.get(sale_id)
        return answered is not None and time.monotonic() < answered.until and user_id not in answered.users

    def next_wave_at(self, sale_id: int) -> datetime | None:
        """When the sale's next wave opens, if the flag is for units of waves to come."""
        return self._waves.get(sale_id)

    def close(self, sale_id: int, outcome: str, next_wave_at: datetime | None = None, shards: int = 1) -> None:
        """Remember a fresh refusal. `wave` (the units so far are gone, a wave is to come) is
        remembered as sold out until the wave at the latest, by this process's clock: an early
        expiry only sends the next request to Redis, whose clock opens the wave."""
        if outcome == "wave" and next_wave_at is not None:
            seconds = min(settings.SALE_GATE_SECONDS, max(0.0, next_wave_at.timestamp() - time.time()))
            self._flags[sale_id] = (Outcome.SOLD_OUT, time.monotonic() + seconds)
            self._waves[sale_id] = next_wave_at
        elif outcome in GATED_OUTCOMES:
            seconds = settings.SALE_GATE_ENDED_SECONDS if outcome == "ended" else settings.SALE_GATE_SECONDS
            self._flags[sale_id] = (outcome, time.monotonic() + seconds)
            self._waves.pop(sale_id, None)
        else:
            return
        if outcome == "ended":  # An ended sale's repeats may need the database: they go on asking.
            self._answered.pop(sale_id, None)
        else:
            self._learn(sale_id, shards, seconds)

    def open(self, sale_id: int) -> None:
        # What it knew of answers goes too: a sale is also reopened when Redis rebuilt it after a
        # loss, which took the `gated` marks with it.
        self._flags.pop(sale_id, None)
        self._waves.pop(sale_id, None)
        self._answered.pop(sale_id, None)

    def clear(self) -> None:
        """Forget everything, the subscription included."""
        with self._lock:
            self._deafened()

    def forked(self) -> None:
        """In a forked child: nothing of the parent's, not even its lock, which another of its
        threads may have held."""
        self.__init__()

    def _learn(self, sale_id: int, shards: int, seconds: float) -> None:
        """Mark the sale's shards gated for the flag's life and a margin, and read who has an
        answer there, unless this process knows already and keeps knowing: its marks live on."""
        with self._lock:
            try:
                self._subscribe()
                shard_keys = SaleKeys.all_of(sale_id, shards)
                answered = self._answered.get(sale_id)
                fresh = answered is None or time.monotonic() >= answered.until
                sent = time.monotonic()
                pipeline = redis_client().pipeline(transaction=False)
                for keys in shard_keys:
                    self._channels[keys.gated] = sale_id
                    pipeline.set(keys.gated, 1, px=int((seconds + GATED_MARGIN_SECONDS) * 1000))
                    if fresh:
                        pipeline.smembers(keys.answered)
                replies = pipeline.execute()
            except redis.RedisError as error:
                logger.warning("the sale gate could not learn who has answers in sale %s: %s", sale_id, error)
                return
            if fresh:
                answered = Answered(users={int(user) for members in replies[1::2] for user in members})
                self._answered[sale_id] = answered
            answered.until = sent + seconds + GATED_MARGIN_SECONDS

    def _subscribe(self) -> None:
        if self._pubsub is not None:
            return
        pubsub = redis_client().pubsub()
        pubsub.subscribe(CHANNEL)
        pubsub.psubscribe(GATED_CHANNELS)
        # Both confirmed before anything is read under them: no later message is missed.
        for _ in range(2):
            message = pubsub.get_message(timeout=settings.REDIS_SOCKET_TIMEOUT)
            if message is None or message["type"] not in ("subscribe", "psubscribe"):
                pubsub.close()
                raise redis.TimeoutError("the sale gate's subscription was not confirmed")
        self._pubsub = pubsub

    def _hear(self) -> None:
        """Take in what was published since the last request: reopened sales, newly answered
        shoppers."""
        if self._pubsub is None:
            return
        with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return
            self._hear_by = time.monotonic() + HEAR_SECONDS
            if not self._news(pubsub):
                return
            try:
                while (message := pubsub.get_message(timeout=0)) is not None:
                    self._heard(message)
            except (redis.RedisError, OSError, ValueError) as error:
                logger.warning("the sale gate lost its subscription (%s); it forgets what it knew", error)
                self._deafened()

    def _news(self, pubsub: redis.client.PubSub) -> bool:
        """Whether the subscription may have something to read. Asking redis-py costs the crowd's
        refusal more than the rest of it, and nearly always finds nothing: a poll of its socket
        says so for a fraction. Reading to the end (`_hear`) leaves nothing whole in redis-py's
        buffer, so what is new is on the socket. A TLS socket may hold news that a poll cannot
        see, and an unconnected one is for redis-py to deal with: both are asked of redis-py."""
        sock = getattr(pubsub.connection, "_sock", None)
        if sock is None or isinstance(sock, ssl.SSLSocket):
            return True
        if self._polled is None or self._polled[0] is not sock:
            poller = select.poll()
            poller.register(sock, select.POLLIN | select.POLLPRI)
            self._polled = (sock, poller)
        return bool(self._polled[1].poll(0))

    def _heard(self, message: dict) -> None:
        kind = message["type"]
        if kind == "message":
            self.open(int(message["data"]))
        elif kind == "pmessage":
            sale_id = self._channels.get(message["channel"].decode())
            if sale_id in self._answered:
                self._answered[sale_id].users.add(int(message["data"]))
        elif kind in ("subscribe", "psubscribe"):
            # Made again after a break: what was published meanwhile is lost.
            self._deafened()

    def _deafened(self) -> None:
        pubsub, self._pubsub, self._polled = self._pubsub, None, None
        self._flags.clear()
        self._waves.clear()
        self._answered.clear()
        if pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                pubsub.close()


sale_gate = SaleGate()
# A forked process (a web worker) starts with no flags and no subscription of its parent's.
os.register_at_fork(after_in_child=sale_gate.forked)


def sale_gate_reopen(sale_id: int) -> None:
    """Units came back or the terms changed: every process forgets its flag for the sale."""
    sale_gate.open(sale_id)
    try:
        redis_client().publish(CHANNEL, sale_id)
    except redis.RedisError:
        logger.warning("could not announce that sale %s reopened; flags expire by themselves", sale_id)
