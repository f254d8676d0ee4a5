"""Lanes: short view stacks in front of the full Django stack (config/wsgi.py) for the requests
that come every second of a sale and need little of it: the liveness probe, which a load
balancer asks and which needs nothing but to be answered, and a sale's state, which every open
sale page polls and which needs neither a session nor CSRF.

A lane is Django's own WSGI handler (signals, database connections, error pages) with a
middleware chain of its own; the lanes share their URLs.
"""

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.urls import include, path, set_urlconf
from django.utils.module_loading import import_string

from core import views
from core.paths import SALE_STATE_PATH
from shop import views as shop_views


class LaneHandler(WSGIHandler):
    def __init__(self, *, middleware: list[str], urlconf: str):
        self.middleware, self.urlconf = middleware, urlconf
        super().__init__()

    def load_middleware(self, is_async=False):
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        handler = convert_exception_to_response(self._get_response)
        for dotted in reversed(self.middleware):
            handler = convert_exception_to_response(import_string(dotted)(handler))
        self._middleware_chain = handler

    def get_response(self, request):
        request.urlconf = self.urlconf
        try:
            return super().get_response(request)
        finally:
            set_urlconf(None)  # What runs next in this thread resolves the shop's own URLs.


def probe_takes(environ: dict) -> bool:
    """Whether the probe lane serves this request: `GET /livez`."""
    return environ.get("PATH_INFO") == "/livez" and environ.get("REQUEST_METHOD") == "GET"


# The probe lane: /livez alone, with its request id (every answer carries one) and nothing else
# (no session, no metrics; the rate limiter exempts it anyway).
PROBE_MIDDLEWARE = ["core.middleware.RequestIdMiddleware"]


def state_takes(environ: dict) -> bool:
    """Whether the state lane serves this request: `GET /sales/<id>/state/`."""
    return environ.get("REQUEST_METHOD") == "GET" and SALE_STATE_PATH.match(environ.get("PATH_INFO", "")) is not None


# The state lane: what the full stack does to a sale's state but for the session, CSRF, the
# user, messages and static files, none of which it reads: the same metrics, request id,
# security headers and rate limit (per process and address: limits/middleware.py).
STATE_MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "limits.middleware.RateLimitMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# The lanes' own routes first; then the whole shop's, for the pages that name them (an error page).
urlpatterns = [
    path("livez", views.livez),
    path("sales/<int:pk>/state/", shop_views.sale_state),
    path("", include("config.urls")),
]
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
