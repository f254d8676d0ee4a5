"""Purchase blocks in force, as every web process knows them: a blocked purchase is refused
before the admission script runs, without a query.

The blocks in force are published to Redis as one small JSON document (`purchase_blocks_publish`:
by the services that create and lift blocks, once their transaction commits, and every minute by
beat, which drops the expired ones and rebuilds the document after Redis lost it). A process
reads it again at most every PURCHASE_BLOCKS_REFRESH_SECONDS, so a new block holds everywhere
within that time; when Redis cannot be read it keeps what it knew.
"""

import ipaddress
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from django.utils import timezone

from core.addresses import ip_address
from core.breaker import redis_breaker
from core.conf import hot_settings
from core.redis import redis_client, run_lua
from orders.models import PurchaseBlock

logger = logging.getLogger(__name__)

# One hash tag, so that the script that writes the document runs on Redis Cluster too.
KEY = "{purchase-blocks}"
STAMP_KEY = "{purchase-blocks}:stamp"
PUBLISHES_KEY = "{purchase-blocks}:publishes"
PUBLISH_LUA = Path(__file__).parent / "lua" / "blocks_publish.lua"


def purchase_blocks_publish() -> int:
    """Write the blocks in force to Redis for every web process. Returns how many.

    Publishes may overlap (beat's, and each staff change's); the stamp taken before the read
    orders them, so the document read last is the one that stays: every change publishes after
    its commit, so that document holds it."""
    stamp = redis_client().incr(PUBLISHES_KEY)
    rows = PurchaseBlock.objects.in_force(timezone.now()).values_list(
        "account_id", "network", "flash_sale_id", "expires_at"
    )
    document = [[account, network, sale, until and until.timestamp()] for account, network, sale, until in rows]
    _document_write(json.dumps(document), stamp)
    return len(document)


def _document_write(document: str, stamp: int) -> bool:
    return bool(run_lua(PUBLISH_LUA, [KEY, STAMP_KEY], [document, stamp]))


@dataclass(frozen=True)
class Block:
    sale_id: int | None  # None: every sale
    until: float | None  # seconds since the epoch; None: until lifted

    def holds(self, sale_id: int, now: float) -> bool:
        return (self.sale_id is None or self.sale_id == sale_id) and (self.until is None or now < self.until)


class BlockList:
    def __init__(self):
        self._accounts: dict[int, list[Block]] = {}
        self._networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Block]] = []
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def blocks(self, *, sale_id: int, user_id: int, address: str | None) -> bool:
        """Whether a block in force keeps this shopper, or this address, from buying in the sale."""
        self._refresh()
        now = time.time()
        if any(block.holds(sale_id, now) for block in self._accounts.get(user_id, ())):
            return True
        ip = ip_address(address) if self._networks else None
        return ip is not None and any(ip in network and block.holds(sale_id, now) for network, block in self._networks)

    def _refresh(self) -> None:
        if time.monotonic() - self._read_at < hot_settings.PURCHASE_BLOCKS_REFRESH_SECONDS:
            return
        with self._lock:
            if time.monotonic() - self._read_at < hot_settings.PURCHASE_BLOCKS_REFRESH_SECONDS:
                return
            self._read_at = time.monotonic()
            try:
                raw = redis_breaker.call(lambda: redis_client().get(KEY))
            except redis.RedisError:
                logger.warning("could not read the purchase blocks; keeping the %s known", self._count())
                return
            if raw is not None:
                self._load(json.loads(raw))

    def _load(self, document: list) -> None:
        accounts: dict[int, list[Block]] = {}
        networks = []
        for account, network, sale, until in document:
            block = Block(sale, until)
            if account is not None:
                accounts.setdefault(account, []).append(block)
            else:
                networks.append((ipaddress.ip_network(network), block))
        self._accounts, self._networks = accounts, networks

    def _count(self) -> int:
        return sum(map(len, self._accounts.values())) + len(self._networks)

    def forget(self) -> None:
        """Drop what this process knows and read the blocks again at the next purchase (this
        process changed them, or a test starts afresh)."""
        with self._lock:
            self._accounts, self._networks, self._read_at = {}, [], float("-inf")


block_list = BlockList()
