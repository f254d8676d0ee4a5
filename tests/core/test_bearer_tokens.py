"""A bearer token's signature is verified once per process; its expiry on every request."""

import time
from datetime import timedelta

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from core.api import authentication
from tests.conftest import bearer_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ME = "/api/v1/orders/"  # any endpoint that needs a shopper


def test_a_token_seen_before_is_not_verified_again(api_client):
    token = str(AccessToken.for_user(UserFactory()))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    authentication._verified.cache_clear()

    assert [api_client.get(ME).status_code for _ in range(3)] == [200, 200, 200]
    assert authentication._verified.cache_info()[:2] == (2, 1)  # hits, misses


def test_a_remembered_token_is_refused_once_it_expires(api_client):
    token = AccessToken.for_user(UserFactory())
    token.set_exp(lifetime=timedelta(seconds=1))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get(ME).status_code == 200

    time.sleep(max(0.0, token["exp"] - time.time()) + 0.1)
    response = api_client.get(ME)
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_a_token_with_a_forged_signature_is_refused_every_time(api_client):
    token = str(AccessToken.for_user(UserFactory()))
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert [api_client.get(ME).status_code for _ in range(2)] == [401, 401]


def test_a_purchase_with_a_remembered_token_still_names_its_shopper(make_sale):
    sale = make_sale(quantity=5, limit=1)
    user = UserFactory()
    client = bearer_client(user)
    first = client.post(f"/api/v1/flash-sales/{sale.pk}/purchase/", {"quantity": 1}, format="json",
                        HTTP_IDEMPOTENCY_KEY="a")  # fmt: skip
    second = client.post(f"/api/v1/flash-sales/{sale.pk}/purchase/", {"quantity": 1}, format="json",
                         HTTP_IDEMPOTENCY_KEY="b")  # fmt: skip
    assert (first.status_code, second.status_code) == (202, 409)
    assert second.json()["code"] == "limit_exceeded"
