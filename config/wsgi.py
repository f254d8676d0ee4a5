"""The WSGI application: Django's, with lanes and a door in front.

`GET /livez` is answered by the probe lane, a sale's state by the state lane (config/lanes.py)
and a bearer-token purchase by the purchase door (purchase/door.py), each without most of what
Django's full stack does; everything else, and every purchase when PURCHASE_DOOR=0, by the full
stack.
"""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

django_application = get_wsgi_application()

# Only once Django is set up: the door and the lane import the apps' models.
from config.lanes import PROBE_MIDDLEWARE, STATE_MIDDLEWARE, LaneHandler, probe_takes, state_takes  # noqa: E402
from core.metrics import metrics_forget_dead_processes  # noqa: E402
from purchase.door import PurchaseDoor  # noqa: E402

metrics_forget_dead_processes()

probe_application = LaneHandler(middleware=PROBE_MIDDLEWARE, urlconf="config.lanes")
state_application = LaneHandler(middleware=STATE_MIDDLEWARE, urlconf="config.lanes")
doors = PurchaseDoor(django_application) if settings.PURCHASE_DOOR else django_application


def application(environ, start_response):
    if probe_takes(environ):
        return probe_application(environ, start_response)
    if state_takes(environ):
        return state_application(environ, start_response)
    return doors(environ, start_response)
