"""The paths that code must know before any URL is resolved (the rate limiter, the
doors): the purchase's, and the pages a crowd refreshes. The URLconfs route the same paths (a
test holds them to these)."""

import re

# The API's purchase (the lane's one route, and the full view's).
PURCHASE_API_ROUTE = r"api/v1/flash-sales/(?P<pk>\d+)/purchase/"
PURCHASE_API_PATH = re.compile(rf"^/{PURCHASE_API_ROUTE}$")
# The storefront's Buy form.
PURCHASE_FORM_PATH = re.compile(r"^/sales/(?P<pk>\d+)/buy/$")
# The pages every waiting shopper refreshes: the home page, a sale's page and its state.
CROWD_PAGE_PATH = re.compile(r"^/(sales/\d+/(state/)?)?$")
# A sale's state, which every open sale page polls (the state door: shop/door.py).
SALE_STATE_PATH = re.compile(r"^/sales/(?P<pk>\d+)/state/$")
