"""The shopper's order pages: the list of cards and one order's page, with its history."""

import pytest
from django.test import Client
from django.urls import reverse

from orders.models import Order
from orders.services import order_pay
from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_orders_page_shows_its_product_variant_money_and_history_to_its_owner_alone(make_sale):
    sale = make_sale(quantity=5, limit=2)
    sale.sku.attributes = {"colour": "black", "size": "M"}
    sale.sku.save()
    shopper = UserFactory()
    assert purchase(client_for(shopper), sale, key="k", quantity=2).status_code == 202
    order = Order.objects.get(user=shopper)
    order_pay(order=order, actor=shopper)
    path = reverse("orders:detail", args=[order.pk])

    page = signed_in(shopper).get(path).content.decode()

    assert f"<h1>Order #{order.pk}</h1>" in page
    assert sale.sku.product.name in page and "black / M" in page
    assert "2 \u00d7 €9.99" in page and "€19.98" in page
    assert "placed, awaiting payment" in page and "paid (payment " in page
    assert "Pay €" not in page  # paid: nothing left to do
    assert signed_in(UserFactory()).get(path).status_code == 404
    assert Client().get(path)["Location"].startswith(reverse("accounts:login"))


def test_the_list_links_each_order_and_paying_from_its_page_comes_back_to_it(make_sale):
    shopper = UserFactory()
    assert purchase(client_for(shopper), make_sale(quantity=5), key="k").status_code == 202
    order = Order.objects.get(user=shopper)
    client = signed_in(shopper)

    listed = client.get(reverse("orders:list")).content.decode()
    answer = client.post(reverse("orders:pay", args=[order.pk]), {"from": "detail"})

    assert f'href="/orders/{order.pk}/"' in listed and "Pay €9.99" in listed
    assert answer["Location"] == reverse("orders:detail", args=[order.pk])
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
