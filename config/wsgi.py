"""The WSGI application: Django's, with two lanes in front (config/lanes.py).

`GET /livez` is answered by the probe lane, a bearer-token purchase by the purchase lane
(purchase/lane.py), each through a short stack of its own; everything else, and every purchase
when PURCHASE_LANE=0, by the full one.
"""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

django_application = get_wsgi_application()

# Only once Django is set up: the lanes import the apps' models.
from config.lanes import PROBE_MIDDLEWARE, LaneHandler, probe_takes  # noqa: E402
from purchase import lane  # noqa: E402

probe_application = LaneHandler(middleware=PROBE_MIDDLEWARE, urlconf="config.lanes")
purchase_application = None
if settings.PURCHASE_LANE:
    purchase_application = LaneHandler(middleware=lane.MIDDLEWARE, urlconf=lane.__name__)


def application(environ, start_response):
    if probe_takes(environ):
        return probe_application(environ, start_response)
    if purchase_application is not None and lane.takes(environ):
        return purchase_application(environ, start_response)
    return django_application(environ, start_response)
