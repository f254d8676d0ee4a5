"""Rate limiting before any view runs: a per-process bucket first, then Redis's shared one.

Each request falls in a route group (purchase, login, write, read, health); liveness, metrics
and static files fall in none. A group limits per user and per client IP (and login per username,
against password guessing), with rates from RATE_LIMITS. Over the limit: 429 `rate_limited`
with Retry-After. Every limited response carries RateLimit-Limit/-Remaining/-Reset. When
Redis is unreachable the per-process bucket decides alone.
"""

import contextlib
import hashlib
import ipaddress
import logging
import math
import re
from functools import cache

import redis
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from config.api.authentication import bearer_token
from config.api.parsers import json_parse
from limits.buckets import Decision, Limit, LocalBuckets, shared_take

logger = logging.getLogger(__name__)

PURCHASE_PATH = re.compile(r"^(/api/v1/flash-sales/\d+/purchase/|/sales/\d+/buy/)$")
PASS_PATH = re.compile(r"^/api/v1/flash-sales/\d+/pass/$")
LOGIN_PATHS = frozenset(
    {
        "/api/v1/auth/token/",
        "/api/v1/auth/register/",
        "/admin/login/",
        "/accounts/login/",
        "/accounts/signup/",
        "/accounts/password-reset/",  # each try sends an e-mail
    }
)
EXEMPT_PREFIXES = ("/livez", "/metrics", "/static/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def route_group(request: HttpRequest) -> str | None:
    path = request.path
    if path.startswith(EXEMPT_PREFIXES):
        return None
    if path == "/healthz":
        return "health"
    if request.method not in SAFE_METHODS:
        if PURCHASE_PATH.match(path):
            return "purchase"
        if PASS_PATH.match(path):
            return "pass"
        if path in LOGIN_PATHS:
            return "login"
        return "write"
    return "read"


@cache
def _networks(cidrs: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def ip_address(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, None for anything that is not one. An IPv4 peer seen through an IPv6 socket
    (`::ffff:192.0.2.1`) is its IPv4 address, so that IPv4 networks hold for it too."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    return (ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None) or ip


def address_in(address: str, cidrs: list[str]) -> bool:
    """Whether `address` lies in one of the networks; False for anything that is not an address."""
    ip = ip_address(address)
    return ip is not None and any(ip in network for network in _networks(tuple(cidrs)))


def _is_trusted(address: str) -> bool:
    # Most deployments trust no proxy: then no address needs parsing.
    return bool(settings.RATE_LIMIT_TRUSTED_PROXIES) and address_in(address, settings.RATE_LIMIT_TRUSTED_PROXIES)


def client_ip(request: HttpRequest) -> str:
    """The peer address, unless the peer is a trusted proxy: then the nearest untrusted hop
    that the proxies recorded in X-Forwarded-For. A client cannot choose its own address."""
    peer = request.META.get("REMOTE_ADDR", "")
    if not _is_trusted(peer):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop):
            return hop
    return peer


def request_user_id(request: HttpRequest) -> str | None:
    """Who is asking, without a database query: the JWT's user or the session's."""
    if request.headers.get("Authorization", "").startswith("Bearer "):
        token = bearer_token(request)
        return str(token["user_id"]) if token is not None and "user_id" in token else None
    session = getattr(request, "session", None)
    return session.get("_auth_user_id") if session is not None else None


def login_username(request: HttpRequest) -> str | None:
    try:
        if request.content_type == "application/json":
            body = json_parse(request.body or b"{}")
            username = body.get("username") if isinstance(body, dict) else None
        else:
            username = request.POST.get("username")
    except (ValueError, RequestDataTooBig):
        return None  # The view answers a malformed or oversized body.
    if not isinstance(username, str) or not username:
        return None
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]


def request_limits(request: HttpRequest, group: str) -> list[Limit]:
    rates = settings.RATE_LIMITS.get(group, {})
    identities = {"ip": client_ip(request), "user": request_user_id(request)}
    if "username" in rates:
        identities["username"] = login_username(request)
    limits = []
    for scope, (rate, burst) in rates.items():
        identity = identities.get(scope)
        if identity and rate > 0 and burst > 0:
            limits.append(Limit(f"{group}:{scope}:{identity}", rate, burst))
    return limits


def too_many_requests(request: HttpRequest, decision: Decision) -> HttpResponse:
    """429 with Retry-After: JSON for the API (and the probes), a page for a shopper's browser."""
    seconds = max(1, math.ceil(decision.retry_after))
    if request.path.startswith(("/api/", "/healthz")):
        response = JsonResponse(
            {"code": "rate_limited", "detail": "Too many requests. Slow down and try again shortly."}, status=429
        )
    else:
        response = too_many_requests_page(request, seconds)
    response["Retry-After"] = str(seconds)
    return response


def too_many_requests_page(request: HttpRequest, seconds: int) -> HttpResponse:
    """The storefront's 429: a page that says when to try again, and Retry-After."""
    response = render(request, "429.html", {"seconds": seconds}, status=429)
    response["Retry-After"] = str(seconds)
    return response


class RateLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.local = LocalBuckets()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        group = route_group(request)
        limits = request_limits(request, group) if group else []
        if not limits:
            return self.get_response(request)
        decision = self.local.take(limits)
        if decision.allowed and group == "purchase":
            # The admission script takes the shared buckets in the same round trip as the
            # purchase itself (a refusal the sale gate answers needs neither).
            request.purchase_limits = limits
        elif decision.allowed:
            # With Redis away, the per-process bucket decides alone.
            with contextlib.suppress(redis.RedisError):
                decision = shared_take(limits)
        response = too_many_requests(request, decision) if not decision.allowed else self.get_response(request)
        response.headers.setdefault("RateLimit-Limit", str(decision.limit.burst))
        response.headers.setdefault("RateLimit-Remaining", str(max(0, decision.remaining)))
        response.headers.setdefault("RateLimit-Reset", str(math.ceil(decision.reset_seconds or decision.retry_after)))
        return response
