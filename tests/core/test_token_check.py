"""The microsecond check of the shop's own access tokens (core.api.authentication._issued_here)
accepts a token only where simplejwt accepts it, with the same claims, and token_claims gives
simplejwt's answer for every token: generated ones, forged, of other algorithms and keys,
refresh tokens, expired, with claims missing or added."""

import base64
import hashlib
import hmac
import json
import string
import time
from datetime import timedelta

from django.conf import settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from core.api import authentication
from tests.factories import UserFactory

DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
NOW = int(time.time())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encoded(document: dict, spaced: bool) -> str:
    return b64(json.dumps(document, separators=(", ", ": ") if spaced else (",", ":")).encode())


@st.composite
def tokens(draw) -> str:
    alg = draw(st.sampled_from(["HS256", "HS256", "HS256", "HS384", "HS512", "none"]))
    header = {"alg": alg, "typ": draw(st.sampled_from(["JWT", "JWT", "jwt"]))}
    if draw(st.booleans()) and draw(st.booleans()):
        header["kid"] = "another"
    claims = {
        "token_type": draw(st.sampled_from(["access", "access", "refresh", "sliding"])),
        # Not a string of digits: simplejwt fails with a TypeError on a signed token whose exp is
        # one (PyJWT reads it as a number, simplejwt does not), and only the key's holder can sign.
        "exp": draw(
            st.one_of(
                st.integers(NOW - 10**6, NOW + 10**8), st.floats(NOW - 100, NOW + 10**6), st.text(string.ascii_letters)
            )
        ),
        "iat": draw(st.one_of(st.integers(NOW - 10**6, NOW + 10**6), st.floats(NOW - 100, NOW + 100))),
        "jti": draw(st.one_of(st.text(min_size=1, max_size=32), st.integers())),
        "user_id": draw(st.one_of(st.integers(1, 10**9), st.text(max_size=8), st.booleans())),
    }
    for claim in draw(st.sets(st.sampled_from(list(claims)))):
        del claims[claim]  # claims missing
    claims |= draw(
        st.dictionaries(st.sampled_from(["nbf", "aud", "iss", "sub", "username"]), st.integers(NOW - 100, NOW + 100))
    )  # claims added
    spaced = draw(st.booleans()) and draw(st.booleans())
    signing_input = f"{encoded(header, spaced)}.{encoded(claims, spaced)}"
    key = draw(st.sampled_from([settings.SECRET_KEY, settings.SECRET_KEY, "another key"]))
    signature = "" if alg == "none" else b64(hmac.new(key.encode(), signing_input.encode(), DIGESTS[alg]).digest())
    token = f"{signing_input}.{signature}"
    if draw(st.booleans()) and draw(st.booleans()):  # tampered with after signing
        at = draw(st.integers(0, len(token) - 1))
        token = token[:at] + draw(st.sampled_from("Aa0_-.=")) + token[at + 1 :]
    return token


def simplejwt_claims(raw: str) -> dict | None:
    try:
        return AccessToken(raw).payload
    except TokenError:
        return None


def token_claims(raw: str) -> dict | None:
    try:
        return authentication.token_claims(raw)
    except TokenError:
        return None


@hypothesis_settings(max_examples=1500, deadline=None)
@given(token=tokens())
def test_every_token_gets_simplejwts_answer(token):
    quick = authentication._issued_here(token)
    expected = simplejwt_claims(token)

    if quick is not None:
        assert quick == expected, "accepted by the quick check only"
    assert token_claims(token) == expected


def test_the_shops_own_tokens_take_the_quick_check(db):
    token = str(AccessToken.for_user(UserFactory()))

    claims = authentication._issued_here(token)

    assert claims is not None
    assert claims == AccessToken(token).payload


def test_a_token_of_the_shop_expired_or_forged_is_refused_by_both(db):
    token = AccessToken.for_user(UserFactory())
    token.set_exp(lifetime=-timedelta(seconds=1))
    expired = str(token)
    issued = str(AccessToken.for_user(UserFactory()))
    forged = issued[:-10] + ("A" if issued[-10] != "A" else "B") + issued[-9:]

    assert [authentication._issued_here(raw) for raw in (expired, forged)] == [None, None]
    assert [token_claims(raw) for raw in (expired, forged)] == [None, None]
