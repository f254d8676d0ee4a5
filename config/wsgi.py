"""The WSGI application: Django's, with a lane and doors in front.

`GET /livez` is answered by the probe lane (config/lanes.py), a sale's state by the state door
(shop/door.py) and a bearer-token purchase by the purchase door (purchase/door.py), each without
most of what Django's full stack does; everything else, and every purchase when PURCHASE_DOOR=0,
by the full stack.
"""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

django_application = get_wsgi_application()

# Only once Django is set up: the doors and the lane import the apps' models.
from config.lanes import PROBE_MIDDLEWARE, LaneHandler, probe_takes  # noqa: E402
from core.metrics import metrics_forget_dead_processes  # noqa: E402
from purchase.door import PurchaseDoor  # noqa: E402
from shop.door import StateDoor  # noqa: E402

metrics_forget_dead_processes()

probe_application = LaneHandler(middleware=PROBE_MIDDLEWARE, urlconf="config.lanes")
purchase_door = PurchaseDoor(django_application) if settings.PURCHASE_DOOR else django_application
doors = StateDoor(purchase_door)


def application(environ, start_response):
    if probe_takes(environ):
        return probe_application(environ, start_response)
    return doors(environ, start_response)
