"""Short tokens the shop hands out and recognises without a query (reservation ids, purchase
passes, queue tickets): an HMAC-SHA256 of the token's body under SECRET_KEY, with a salt per kind
of token, as Django's salted_hmac makes it, its key derived once per process."""

import functools
import hashlib
import hmac

from django.utils.crypto import constant_time_compare

from core.conf import hot_settings


@functools.cache
def _key(salt: str, secret: str) -> bytes:
    return hashlib.sha256((salt + secret).encode()).digest()


def signature(salt: str, body: str, length: int = 32) -> str:
    return hmac.digest(_key(salt, hot_settings.SECRET_KEY), body.encode(), "sha256").hex()[:length]


def signature_matches(salt: str, body: str, given: str, length: int = 32) -> bool:
    return constant_time_compare(given, signature(salt, body, length))
