"""Liveness of the shop's dependencies, for load balancers and `make run`."""

import logging

from django.conf import settings
from django.db import connection
from kombu import Connection

from config.redis import redis_client

logger = logging.getLogger(__name__)


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    redis_client().ping()


def check_broker() -> None:
    timeout = settings.HEALTHZ_TIMEOUT
    transport_options = {"socket_connect_timeout": timeout, "socket_timeout": timeout, "max_retries": 0}
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout, transport_options=transport_options) as broker:
        broker.ensure_connection(max_retries=0, timeout=timeout)


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
