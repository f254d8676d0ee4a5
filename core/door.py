"""A door: one request a crowd sends thousands of times a second, answered in plain WSGI in front
of Django's handler, whose signals, `HttpRequest`, resolver and middleware chain cost more than
the answer's own work.

A door reads the environ itself and answers with what the full stack would send: the same
status and body, the request id, the security headers of Django's SecurityMiddleware and
X-Frame-Options, and the same metrics series. Anything off its usual path (a Host the shop does
not serve, a plain-HTTP request that must be redirected, whatever its `answer` declines, any
exception) it hands to the full stack untouched, whose answer is then the one the rest of the
shop gives. The doors: the purchase (purchase/door.py) and a sale's state (shop/door.py).
"""

import functools
import logging
import time
from dataclasses import dataclass
from http import HTTPStatus

from django.conf import settings
from django.core.signals import setting_changed
from django.db import close_old_connections
from django.dispatch import receiver
from django.http.request import split_domain_port, validate_host
from django_prometheus.middleware import Metrics

from core.conf import hot_settings
from core.middleware import request_id_for, request_id_var

logger = logging.getLogger(__name__)

STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


@dataclass(frozen=True, slots=True)
class Answer:
    """A door's answer: its status, body, content type and the headers of its own."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"


class Door:
    """The WSGI application in front of `application` (Django's). A door names its view and
    method (for the metrics) and says which requests it takes and how it answers them."""

    view_name: str
    method: str

    def __init__(self, application):
        self.application = application
        metrics = Metrics.get_instance()
        self.requests = metrics.requests_total
        self.requests_by_view = metrics.requests_by_view_transport_method.labels(self.view_name, "http", self.method)
        self.responses = metrics.responses_total
        self.responses_by_status = metrics.responses_by_status_view_method
        self.latency = metrics.requests_latency_by_view_method.labels(self.view_name, self.method)
        self.by_status = {}

    def takes(self, environ: dict) -> bool:
        """Whether the request is the door's (by method and path alone)."""
        raise NotImplementedError

    def answer(self, environ: dict) -> Answer | None:
        """The answer, or None for the full stack to give it. Must not have done anything anyone
        could see when it declines, but for taking from a rate limiter's per-process bucket (the
        full stack takes again: stricter, never looser)."""
        raise NotImplementedError

    def __call__(self, environ, start_response):
        if not self.takes(environ) or not host_served(environ):
            return self.application(environ, start_response)
        secure = is_secure(environ)
        if hot_settings.SECURE_SSL_REDIRECT and not secure:
            return self.application(environ, start_response)  # SecurityMiddleware's redirect
        started = time.perf_counter()
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        token = request_id_var.set(request_id)
        try:
            answer = self.answer(environ)
        except Exception:
            logger.exception("the %s door failed; the full stack answers", self.view_name)
            answer = None
        finally:
            request_id_var.reset(token)
            # What Django's handler does when a request finishes: a connection that failed or
            # outlived CONN_MAX_AGE is closed.
            close_old_connections()
        if answer is None:
            return self.application(environ, start_response)
        headers = [
            ("Content-Type", answer.content_type),
            ("Content-Length", str(len(answer.body))),
            ("X-Request-ID", request_id),
            *answer.headers,
            *security_headers(secure),
        ]
        start_response(STATUS_LINES[answer.status], headers)
        self.requests.inc()
        self.requests_by_view.inc()
        self.responses.inc()
        self.responses_of(answer.status).inc()
        self.latency.observe(time.perf_counter() - started)
        return [answer.body]

    def responses_of(self, status: int):
        """The counter of answers by status, resolved once per status."""
        counter = self.by_status.get(status)
        if counter is None:
            counter = self.by_status[status] = self.responses_by_status.labels(str(status), self.view_name, self.method)
        return counter


def host_served(environ: dict) -> bool:
    """Whether the request's Host is one the shop serves, as `HttpRequest.get_host` judges it;
    False for anything it would have to think about (a forwarded host, none at all)."""
    if hot_settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
        return False
    host = environ.get("HTTP_HOST")
    return host is not None and _served(host)


@functools.lru_cache(maxsize=256)
def _served(host: str) -> bool:
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed_hosts)


def is_secure(environ: dict) -> bool:
    """`HttpRequest.is_secure`, from the environ."""
    if hot_settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = hot_settings.SECURE_PROXY_SSL_HEADER
        value = environ.get(header)
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return environ.get("wsgi.url_scheme") == "https"


@functools.cache
def security_headers(secure: bool) -> tuple[tuple[str, str], ...]:
    """The headers SecurityMiddleware and XFrameOptionsMiddleware give an answer without them,
    worked out once from the settings (and again when a test changes them)."""
    headers = []
    if settings.SECURE_HSTS_SECONDS and secure:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        value += "; includeSubDomains" * settings.SECURE_HSTS_INCLUDE_SUBDOMAINS
        value += "; preload" * settings.SECURE_HSTS_PRELOAD
        headers.append(("Strict-Transport-Security", value))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if referrer := settings.SECURE_REFERRER_POLICY:
        policies = referrer.split(",") if isinstance(referrer, str) else referrer
        headers.append(("Referrer-Policy", ",".join(policy.strip() for policy in policies)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    headers.append(("X-Frame-Options", settings.X_FRAME_OPTIONS.upper()))
    return tuple(headers)


@receiver(setting_changed)
def _settings_changed(**kwargs) -> None:
    _served.cache_clear()
    security_headers.cache_clear()
