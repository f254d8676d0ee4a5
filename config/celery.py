import os

from celery import Celery
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")


class SlotReleasingQoS(kombu_redis.QoS):
    """kombu's Redis acknowledgement emulation, releasing a message's prefetch slot even when the
    acknowledgement fails.

    kombu's own frees the slot only after its Redis call succeeds: a message taken as Redis (the
    broker) dies keeps its slot for good, and a worker whose slots are all kept never asks the
    broker for anything again, so it never notices the broker is back (seen in the make-run blip
    test: "Couldn't ack" twice, then nothing). Released here, the worker asks again, finds the
    connection lost and reconnects; the message stays in the broker's unacknowledged index and is
    restored after the visibility timeout, and the shop's tasks are safe to run twice.
    """

    def ack(self, delivery_tag):
        try:
            super().ack(delivery_tag)
        except Exception:
            virtual.QoS.ack(self, delivery_tag)
            raise

    def reject(self, delivery_tag, requeue=False):
        try:
            super().reject(delivery_tag, requeue=requeue)
        except Exception:
            virtual.QoS.ack(self, delivery_tag)
            raise


kombu_redis.Channel.QoS = SlotReleasingQoS

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
