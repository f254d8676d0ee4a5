"""The WSGI application: Django's, with the purchase lane in front (shop/api/lane.py).

A bearer-token purchase is served by the lane's short stack; everything else, and every
purchase when PURCHASE_LANE=0, by the full one.
"""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

django_application = get_wsgi_application()

if settings.PURCHASE_LANE:
    from shop.api import lane  # Only once Django is set up: it imports the apps' models.

    lane_application = lane.PurchaseLaneHandler()

    def application(environ, start_response):
        if lane.takes(environ):
            return lane_application(environ, start_response)
        return django_application(environ, start_response)

else:
    application = django_application
