"""A request's bearer token, decoded and verified once per request.

The rate limiter needs the shopper before any view runs; the purchase view authenticates
from the token alone. Both read it through `bearer_token`, so the purchase pays for one
signature check, not two.
"""

from django.http import HttpRequest
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

_UNREAD = object()


def bearer_token(request: HttpRequest) -> AccessToken | None:
    """The request's valid access token, or None (no bearer token, or an invalid one)."""
    token = request.__dict__.get("_bearer_token", _UNREAD)
    if token is _UNREAD:
        header = request.headers.get("Authorization", "")
        token = None
        if header.startswith("Bearer "):
            try:
                token = AccessToken(header.removeprefix("Bearer ").strip())
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
