"""Liveness of the shop's dependencies, for load balancers and `make run`."""

import logging
import threading
import time

from django.conf import settings
from django.db import connection
from kombu import Connection

from core.redis import redis_client

logger = logging.getLogger(__name__)


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    redis_client().ping()


def _connect_to_broker() -> None:
    timeout = settings.HEALTHZ_TIMEOUT
    transport_options = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "max_retries": 0,
    }
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout, transport_options=transport_options) as broker:
        broker.ensure_connection(max_retries=0, timeout=timeout)


class _BrokerCheck:
    """Each check opens a connection to the broker: its answer, or its error, is reused for
    HEALTHZ_BROKER_CACHE_SECONDS, per process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._error: Exception | None = None

    def __call__(self) -> None:
        with self._lock:
            if time.monotonic() - self._checked_at >= settings.HEALTHZ_BROKER_CACHE_SECONDS:
                try:
                    _connect_to_broker()
                    self._error = None
                except Exception as error:
                    self._error = error
                self._checked_at = time.monotonic()
            if self._error is not None:
                raise self._error

    def forget(self) -> None:
        with self._lock:
            self._checked_at = float("-inf")


check_broker = _BrokerCheck()


CHECKS = {"database": check_database, "redis": check_redis, "broker": check_broker}


def health_report() -> dict[str, str]:
    """`{"database": "ok", ...}`, with the error's class name in place of "ok" for a failing part."""
    report = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as error:
            logger.warning("health check %s failed: %r", name, error)
            report[name] = f"error: {type(error).__name__}"
        else:
            report[name] = "ok"
    return report
