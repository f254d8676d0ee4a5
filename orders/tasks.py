import logging
import os
import socket

from celery import shared_task
from django.db import OperationalError
from redis import RedisError

from inventory import redis_sales
from orders import blocks, emails, services, waiting_room, writer

logger = logging.getLogger(__name__)


def consumer_name() -> str:
    """This worker process's name in the writers' consumer group."""
    return f"{socket.gethostname()}-{os.getpid()}"


@shared_task(
    autoretry_for=(OperationalError,),
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=20,
)
def order_writer_drain(sale_id: int, shard: int = 0, shards: int = 1) -> bool:
    """Write a sale's reservations (of one stock shard) as orders until its stream is empty.

    Retries with jittered backoff, up to about ten minutes, while PostgreSQL is away;
    reservations stay in the stream meanwhile, and the sweep goes on after the last retry, so
    nothing is lost. While Redis is away it does not retry: Redis is often the broker too, so the
    retry could not be sent, and a retry that fails leaves kombu's Redis transport unable to
    settle the message, which holds the worker's prefetch slot for good (a worker that stops
    consuming). The sweep drains the stream once Redis is back. When it stops at its batch bound
    with work left, it schedules itself again rather than running on.
    """
    try:
        finished = writer.order_writer_drain(sale_id=sale_id, consumer=consumer_name(), shard=shard, shards=shards)
    except RedisError:
        logger.warning("sale %s: Redis is away; the sweep drains its reservations when it is back", sale_id)
        return False
    if not finished:
        order_writer_drain.delay(sale_id, shard, shards)
    return finished


@shared_task(autoretry_for=(OperationalError,), retry_backoff=1, retry_jitter=True, max_retries=3)
def order_writer_sweep() -> dict[str, int]:
    """Every few seconds: take over reservations dead consumers left, and drain what is new.

    Covers reservations whose drain task was never scheduled (broker down) or was lost with
    its worker. While Redis is away it gives up until beat's next run (see order_writer_drain).
    """
    try:
        return _sweep()
    except RedisError:
        logger.warning("the writers' sweep waits for Redis")
        return {}


def _sweep() -> dict[str, int]:
    consumer = consumer_name()
    reclaimed = {}
    for keys in redis_sales.sales_with_streams():
        shard = {"sale_id": keys.sale_id, "shard": keys.shard, "shards": keys.shards}
        reclaimed[keys.stream] = writer.order_writer_reclaim(consumer=consumer, **shard)
        if not writer.order_writer_drain(consumer=consumer, **shard):
            order_writer_drain.delay(keys.sale_id, keys.shard, keys.shards)
    return reclaimed


@shared_task
def orders_expire_unpaid() -> int:
    """Cancel unpaid orders past their deadline; their units go back on sale."""
    return services.orders_expire_unpaid()


@shared_task
def payments_complete_stale(older_than_seconds: float = 60) -> int:
    """Complete payments whose request died between the charge and its record."""
    return services.payments_complete_stale(older_than_seconds=older_than_seconds)


@shared_task
def purchase_blocks_publish() -> int:
    """Publish the purchase blocks in force to the web processes (orders/blocks.py): expired
    ones drop out, and Redis gets them back after it lost them."""
    return blocks.purchase_blocks_publish()


@shared_task
def waiting_rooms_record() -> int:
    """Record the draws of the waiting rooms whose sales just started."""
    return waiting_room.waiting_rooms_record()


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=5, retry_jitter=True, max_retries=8)
def order_emails_send(order_ids: list[int], kind: str) -> int:
    """Mail the shoppers of these orders about the event, each at most once however often this
    runs; retried while the mail server is away. Returns how many this run sent."""
    return emails.order_emails_send(order_ids=order_ids, kind=kind)
