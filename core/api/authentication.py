"""A request's bearer token, decoded and verified once per request, and its signature once
per process.

The rate limiter needs the shopper before any view runs; the purchase view authenticates
from the token alone. Both read it through `bearer_token`, so the purchase pays for one
signature check, not two. And a shopper in a storm sends the same token again and again: a
token whose signature this process verified is kept (the most recent VERIFIED_TOKENS of them)
and only its expiry is checked again.
"""

import functools

from django.http import HttpRequest
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken
from rest_framework_simplejwt.utils import aware_utcnow

_UNREAD = object()
VERIFIED_TOKENS = 4096


@functools.lru_cache(maxsize=VERIFIED_TOKENS)
def _verified(raw: str) -> AccessToken:
    """The token, its signature and claims verified; raises TokenError (never cached)."""
    return AccessToken(raw)


def access_token(raw: str) -> AccessToken:
    """A valid access token from its text; raises TokenError."""
    token = _verified(raw)
    token.check_exp(current_time=aware_utcnow())  # It may have expired since it was verified.
    return token


def bearer_token(request: HttpRequest) -> AccessToken | None:
    """The request's valid access token, or None (no bearer token, or an invalid one)."""
    token = request.__dict__.get("_bearer_token", _UNREAD)
    if token is _UNREAD:
        header = request.headers.get("Authorization", "")
        token = None
        if header.startswith("Bearer "):
            try:
                token = access_token(header.removeprefix("Bearer ").strip())
            except TokenError:
                token = None
        request._bearer_token = token
    return token


class BearerTokenAuthentication(JWTStatelessUserAuthentication):
    """simplejwt's stateless authentication, reusing the token the rate limiter verified.
    An invalid token still gets simplejwt's own 401."""

    def authenticate(self, request):
        token = bearer_token(request._request)
        if token is None:
            return super().authenticate(request)
        return self.get_user(token), token
