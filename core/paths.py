"""The purchase's paths, for the code that must know a request is a purchase before any URL is
resolved: the rate limiter and the purchase door. The URLconfs route the same paths (a test
holds them to these)."""

import re

# The API's purchase (the lane's one route, and the full view's).
PURCHASE_API_ROUTE = r"api/v1/flash-sales/(?P<pk>\d+)/purchase/"
PURCHASE_API_PATH = re.compile(rf"^/{PURCHASE_API_ROUTE}$")
# The storefront's Buy form.
PURCHASE_FORM_PATH = re.compile(r"^/sales/(?P<pk>\d+)/buy/$")
