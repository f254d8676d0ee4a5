"""With a read replica (DATABASE_REPLICA_URL), the router sends catalog reads there and keeps
every read that decides stock, money or an order on the primary. Proven with a second alias
on the test database, as a replica would be."""

import re

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from orders.writer import order_writer_drain
from shop.models import SKU, FlashSale, Product
from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


@pytest.fixture
def routed(settings):
    settings.DATABASE_ROUTERS = ["core.routers.ReplicaRouter"]


def tables(queries) -> set[str]:
    return {table for query in queries for table in re.findall(r'(?:FROM|JOIN) "(\w+)"', query["sql"])}


def test_the_storefront_reads_the_catalog_from_the_replica_and_nothing_that_decides(routed, client, make_sale):
    make_sale(quantity=3)

    with CaptureQueriesContext(connections["replica"]) as on_replica:
        response = client.get("/")

    assert response.status_code == 200
    # The catalog, with each SKU's availability to show (a display, not a decision).
    assert tables(on_replica.captured_queries) == {"shop_product", "shop_sku", "inventory_stock"}


def test_reads_inside_a_transaction_and_every_write_go_to_the_primary(routed):
    assert (Product.objects.all().db, SKU.objects.all().db, FlashSale.objects.all().db) == (
        "replica",
        "replica",
        "default",
    )
    with transaction.atomic():
        assert SKU.objects.all().db == "default"
    with CaptureQueriesContext(connections["replica"]) as on_replica:
        Product.objects.create(name="Lamp", slug="lamp")
    assert not on_replica.captured_queries


def test_a_purchase_and_its_order_read_nothing_from_the_replica(routed, make_sale):
    sale = make_sale(quantity=3)

    with CaptureQueriesContext(connections["replica"]) as on_replica:
        assert purchase(client_for(UserFactory()), sale, key="k").status_code == 202
        order_writer_drain(sale_id=sale.pk, consumer="test")

    assert not on_replica.captured_queries
