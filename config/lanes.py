"""The probe lane: a short view stack in front of the full Django stack (config/wsgi.py) for
`GET /livez`, which a load balancer asks and which needs nothing but to be answered.

A lane is Django's own WSGI handler (signals, database connections, error pages) with a
middleware chain of its own.
"""

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.urls import include, path, set_urlconf
from django.utils.module_loading import import_string

from core import views


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
# The lane's own route first; then the whole shop's, for the pages that name them (an error page).
urlpatterns = [
    path("livez", views.livez),
    path("", include("config.urls")),
]
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
