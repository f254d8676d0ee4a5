import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.breaker import CircuitBreaker, CircuitOpen


def unreachable_redis():
    return redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0)).ping()


def test_the_breaker_opens_after_repeated_failures_then_probes_and_closes(settings, redis_client):
    settings.REDIS_BREAKER_FAILURES = 3
    settings.REDIS_BREAKER_RESET_SECONDS = 0.3
    breaker = CircuitBreaker("test")

    # Three real connection failures open it
    for _ in range(3):
        with pytest.raises(redis.ConnectionError):
            breaker.call(unreachable_redis)
    assert breaker.is_open

    # While open, calls fail at once without touching Redis
    calls = []
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: calls.append(1))
    assert calls == []

    # After the reset time one probe goes through; a failing probe opens it again
    time.sleep(0.35)
    with pytest.raises(redis.ConnectionError):
        breaker.call(unreachable_redis)
    assert breaker.is_open

    # And a successful probe closes it
    time.sleep(0.35)
    assert breaker.call(redis_client.ping) is True
    assert not breaker.is_open
