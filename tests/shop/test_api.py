import re

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    call_command("seed_demo")


def test_product_list_is_paginated_with_skus_prices_and_stock(api_client, demo, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        response = api_client.get("/api/v1/products/?page_size=2")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] >= 6
    assert len(body["results"]) == 2
    assert body["next"]
    product = body["results"][0]
    assert set(product) >= {"slug", "name", "skus"}
    assert set(product["skus"][0]) >= {"code", "price", "available"}


def test_product_detail_shows_available_stock(api_client, demo):
    response = api_client.get("/api/v1/products/aurora-headphones/")

    assert response.status_code == 200
    skus = {sku["code"]: sku for sku in response.json()["skus"]}
    assert skus["AURORA-BLK"] == {"code": "AURORA-BLK", "attributes": {"colour": "black"}, "price": "199.00",
                                  "available": 20}  # fmt: skip


def test_page_size_is_capped_at_100(api_client, demo):
    response = api_client.get("/api/v1/products/?page_size=1000")

    assert response.status_code == 200
    assert len(response.json()["results"]) == response.json()["count"]


def test_flash_sale_list_filters_by_status(api_client, demo):
    response = api_client.get("/api/v1/flash-sales/?status=live")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [sale["status"] for sale in results] == ["live", "live"]  # the demo's second is in waves
    for sale in results:
        assert set(sale) >= {"id", "sku", "product", "price", "quantity", "remaining", "starts_at", "ends_at",
                             "per_user_limit", "status", "version", "shards", "waves", "next_wave_at",
                             "requires_pass", "pass_challenge", "waiting_room_opens_at",
                             "let_through_per_second"}  # fmt: skip
    plain, waves = sorted(results, key=lambda sale: bool(sale["waves"]))
    assert plain["remaining"] == plain["quantity"]
    assert [wave["units"] for wave in waves["waves"]] == [10, 10, 10]
    assert (waves["remaining"], waves["quantity"]) == (10, 30)  # the first wave's units are on offer
    assert waves["next_wave_at"] == waves["waves"][1]["at"]


def test_schema_and_docs_are_served(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/products/" in schema.json()["paths"]

    for path in ("/api/docs/", "/api/redoc/"):
        docs = api_client.get(path)
        assert docs.status_code == 200
        # Every script and style from the shop's own static files, none from a CDN.
        sources = re.findall(rb'(?:src|href)="([^"]+)"', docs.content)
        assert sources and all(source.startswith((b"/static/", b"/api/")) for source in sources), sources
