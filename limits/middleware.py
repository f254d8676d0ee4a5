"""Rate limiting before any view runs: a per-process bucket first, then Redis's shared one.

Each request falls in a route group (purchase, login, write, page, read, health); liveness,
metrics and static files fall in none. A group limits per user and per client IP (and login per username,
against password guessing), with rates from RATE_LIMITS. Over the limit: 429 `rate_limited`
with Retry-After. Every limited response carries RateLimit-Limit/-Remaining/-Reset. When
Redis is unreachable the per-process bucket decides alone. So it does for the pages a crowd
refreshes (shop/pages.py), limited per address only: served from memory, they touch neither
Redis nor the database, and a shared bucket's round trip would cost more than the page; across
N processes a client may then read N times the rate.
"""

import contextlib
import hashlib
import logging
import math
import re

import redis
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from core.addresses import client_ip
from core.api.authentication import bearer_token
from core.api.parsers import json_parse
from core.conf import hot_settings
from core.paths import CROWD_PAGE_PATH, PURCHASE_API_PATH, PURCHASE_FORM_PATH
from limits.buckets import Decision, Limit, local_buckets, shared_take

logger = logging.getLogger(__name__)

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
        if PURCHASE_API_PATH.match(path) or PURCHASE_FORM_PATH.match(path):
            return "purchase"
        if PASS_PATH.match(path):
            return "pass"
        if path in LOGIN_PATHS:
            return "login"
        return "write"
    if CROWD_PAGE_PATH.match(path):
        return "page"
    return "read"


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
    # Only who the group's limits name is looked up: the session is read for a user's limit.
    scopes = hot_settings.RATE_LIMITS.get(group, {})
    identities = {"ip": client_ip(request)}
    if "user" in scopes:
        identities["user"] = request_user_id(request)
    if "username" in scopes:
        identities["username"] = login_username(request)
    return limits_for(group, identities)


def limits_for(group: str, identities: dict[str, str | None]) -> list[Limit]:
    """The limits of a route group for who is asking (by scope: ip, user, username)."""
    rates = hot_settings.RATE_LIMITS.get(group, {})
    limits = []
    for scope, (rate, burst) in rates.items():
        identity = identities.get(scope)
        if identity and rate > 0 and burst > 0:
            limits.append(Limit(f"{group}:{scope}:{identity}", rate, burst))
    return limits


RATE_LIMITED = {"code": "rate_limited", "detail": "Too many requests. Slow down and try again shortly."}


def rate_limit_headers(decision: Decision | None, present: list[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """The RateLimit-* headers of an answer to a limited request, but for those it has already."""
    if decision is None:
        return []
    have = {name for name, _ in present}
    headers = [
        ("RateLimit-Limit", str(decision.limit.burst)),
        ("RateLimit-Remaining", str(max(0, decision.remaining))),
        ("RateLimit-Reset", str(math.ceil(decision.reset_seconds or decision.retry_after))),
    ]
    return [(name, value) for name, value in headers if name not in have]


def too_many_requests(request: HttpRequest, decision: Decision) -> HttpResponse:
    """429 with Retry-After: JSON for the API (and the probes), a page for a shopper's browser."""
    seconds = max(1, math.ceil(decision.retry_after))
    if request.path.startswith(("/api/", "/healthz")):
        response = JsonResponse(RATE_LIMITED, status=429)
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

    def __call__(self, request: HttpRequest) -> HttpResponse:
        group = route_group(request)
        limits = request_limits(request, group) if group else []
        if not limits:
            return self.get_response(request)
        decision = local_buckets.take(limits)
        if decision.allowed and group == "purchase":
            # The admission script takes the shared buckets in the same round trip as the
            # purchase itself (a refusal the sale gate answers needs neither).
            request.purchase_limits = limits
        elif decision.allowed and group != "page":
            # With Redis away, the per-process bucket decides alone.
            with contextlib.suppress(redis.RedisError):
                decision = shared_take(limits)
        response = too_many_requests(request, decision) if not decision.allowed else self.get_response(request)
        for name, value in rate_limit_headers(decision, list(response.items())):
            response[name] = value
        return response
