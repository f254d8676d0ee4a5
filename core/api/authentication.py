"""A request's bearer token, verified once per request, its signature once per process, and the
shop's own tokens in microseconds.

The rate limiter needs the shopper before any view runs; the purchase door and the purchase view
authenticate from the token alone. All of them read it through `token_claims`, so a purchase
pays for one signature check, not two. A shopper in a storm sends the same token again and
again: a token whose signature this process verified is kept (the most recent VERIFIED_TOKENS
of them) and only its expiry is checked again.

A token this process has not seen is checked by `_issued_here` first: the shop's access tokens
have one header (HS256, as simplejwt writes it) and five claims, so their HMAC and claims are
checked directly, at a sixth of what PyJWT and simplejwt's layers cost. Anything else (another
header or algorithm, another claim, a signature that does not match) is left to simplejwt,
which then accepts or refuses it as it always did; a property test holds the two to the same
answer for every token.
"""

import base64
import binascii
import functools
import hmac
import json
import time

from django.http import HttpRequest
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

_UNREAD = object()
VERIFIED_TOKENS = 4096
# The header simplejwt (PyJWT) writes for an HS256 token, as it writes it.
HS256_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
ACCESS_CLAIMS = frozenset({"token_type", "exp", "iat", "jti", "user_id"})
LAST_MOMENT = 253_402_300_800  # 10000-01-01: simplejwt cannot read an expiry past it.


@functools.cache
def _signing_key() -> bytes | None:
    """The key to check the shop's own tokens with, or None when simplejwt's settings ask for
    more than an HS256 signature and a lifetime (an audience, an issuer, leeway, other claims)."""
    plain = (
        api_settings.ALGORITHM == "HS256"
        and not api_settings.VERIFYING_KEY
        and api_settings.AUDIENCE is None
        and api_settings.ISSUER is None
        and api_settings.JWK_URL is None
        and not api_settings.LEEWAY
        and (api_settings.TOKEN_TYPE_CLAIM, api_settings.JTI_CLAIM, api_settings.USER_ID_CLAIM)
        == ("token_type", "jti", "user_id")
        and isinstance(api_settings.SIGNING_KEY, str)
    )
    return api_settings.SIGNING_KEY.encode() if plain else None


def _segment(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _issued_here(raw: str) -> dict | None:
    """The claims of an unexpired access token the shop issued, or None for anything else (to
    be judged by simplejwt)."""
    key = _signing_key()
    header, _, rest = raw.partition(".")
    payload, _, signature = rest.partition(".")
    if key is None or header != HS256_HEADER or not signature or "." in signature:
        return None
    try:
        expected = hmac.digest(key, f"{header}.{payload}".encode(), "sha256")
        if not hmac.compare_digest(expected, _segment(signature)):
            return None
        claims = json.loads(_segment(payload))
    except (binascii.Error, ValueError, UnicodeError):
        return None
    if not isinstance(claims, dict) or claims.keys() - ACCESS_CLAIMS:
        return None
    exp, iat = claims.get("exp"), claims.get("iat", 0)
    now = time.time()
    if (
        claims.get("token_type") != AccessToken.token_type
        or not isinstance(claims.get("jti"), str)
        or type(claims.get("user_id")) not in (str, int)
        or type(exp) is not int
        or type(iat) is not int
        or not now < exp < LAST_MOMENT
        or iat > now
    ):
        return None
    return claims


@functools.lru_cache(maxsize=VERIFIED_TOKENS)
def _verified(raw: str) -> dict:
    """The token's claims, its signature and claims verified; raises TokenError (never cached)."""
    return _issued_here(raw) or AccessToken(raw).payload


def token_claims(raw: str) -> dict:
    """The claims of a valid access token from its text; raises TokenError."""
    claims = _verified(raw)
    if claims["exp"] <= time.time():  # It may have expired since it was verified.
        raise TokenError("Token 'exp' claim has expired")
    return claims


def bearer_token(request: HttpRequest) -> dict | None:
    """The claims of the request's valid access token, or None (no bearer token, or an invalid
    one)."""
    claims = request.__dict__.get("_bearer_token", _UNREAD)
    if claims is _UNREAD:
        header = request.headers.get("Authorization", "")
        claims = None
        if header.startswith("Bearer "):
            try:
                claims = token_claims(header.removeprefix("Bearer ").strip())
            except TokenError:
                claims = None
        request._bearer_token = claims
    return claims


class BearerTokenAuthentication(JWTStatelessUserAuthentication):
    """simplejwt's stateless authentication, reusing the token the rate limiter verified.
    An invalid token still gets simplejwt's own 401."""

    def authenticate(self, request):
        claims = bearer_token(request._request)
        if claims is None:
            return super().authenticate(request)
        return self.get_user(claims), claims
