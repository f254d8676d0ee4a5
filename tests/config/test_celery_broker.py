"""The Celery broker on Redis: a message whose acknowledgement fails as the broker dies must not
keep the worker's prefetch slot, or the worker never asks the broker for anything again."""

import signal

import pytest
import redis
from kombu import Connection, Exchange, Queue

from config import celery  # noqa: F401 - installs the shop's acknowledgement emulation
from scripts.devstack import PrivateRedis


@pytest.mark.parametrize("settle", ["ack", "reject"])
def test_a_message_whose_settling_fails_as_the_broker_dies_gives_its_prefetch_slot_back(tmp_path, settle):
    server = PrivateRedis(tmp_path / "redis", persistent=False)
    url = server.start()
    try:
        with Connection(url) as connection:
            channel = connection.channel()
            channel.basic_qos(0, 1, False)
            queue = Queue("slot-test", Exchange("slot-test"), "slot-test")
            connection.Producer(channel).publish({"n": 1}, exchange=queue.exchange, routing_key="slot-test",
                                                 declare=[queue])  # fmt: skip
            message = queue(channel).get(no_ack=False)
            assert message is not None
            assert not channel.qos.can_consume()  # its one slot is taken

            server.stop(signal.SIGKILL)
            with pytest.raises(redis.ConnectionError):
                getattr(message, settle)()

            assert channel.qos.can_consume()
    finally:
        server.stop()
