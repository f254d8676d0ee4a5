"""A shopper in the browser: sign up, open a sale, buy, watch the result, pay."""

import re

import pytest
from django.urls import reverse

from accounts.models import User
from inventory import redis_sales
from orders.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


def attempt_token(page: str) -> str:
    return re.search(r'name="attempt" value="([^"]+)"', page).group(1)


def test_sign_up_buy_and_pay_in_the_browser(client, make_sale):
    sale = make_sale(quantity=2, limit=1)

    # Sign up (and be signed in)
    response = client.post(
        reverse("accounts:signup"),
        {"username": "dana", "email": "dana@example.com", "password": "a long unusual passphrase"},
    )
    assert response.status_code == 302
    assert User.objects.filter(username="dana").exists()

    # Open the sale and buy
    page = client.get(reverse("shop:sale", args=[sale.pk])).content.decode()
    assert "Buy now" in page
    token = attempt_token(page)
    response = client.post(reverse("purchase:buy", args=[sale.pk]), {"quantity": 1, "attempt": token})
    assert response.status_code == 302
    status_url = response["Location"]

    # The result page shows the order (the writer ran in-process) with a pay button
    result = client.get(status_url).content.decode()
    order = Order.objects.get(user__username="dana")
    assert "It's yours!" in result
    assert f"Order #{order.pk}" in result

    # Submitting the same form again buys nothing more
    again = client.post(reverse("purchase:buy", args=[sale.pk]), {"quantity": 1, "attempt": token})
    assert again["Location"] == status_url
    assert Order.objects.count() == 1

    # Pay
    response = client.post(reverse("orders:pay", args=[order.pk]), follow=True)
    assert "is paid" in response.content.decode()
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert "Paid" in client.get(reverse("orders:list")).content.decode()


def test_a_refusal_comes_back_as_a_message_on_the_sale_page(client, make_sale):
    sale = make_sale(quantity=1, limit=1)
    client.force_login(User.objects.create_user("eve", password="x" * 20))
    page = client.get(reverse("shop:sale", args=[sale.pk])).content.decode()
    client.post(reverse("purchase:buy", args=[sale.pk]), {"quantity": 1, "attempt": attempt_token(page)})

    second_try = {"quantity": 1, "attempt": "second-try"}
    response = client.post(reverse("purchase:buy", args=[sale.pk]), second_try, follow=True)

    assert "You already hold as many as one shopper may buy in this sale." in response.content.decode()
    assert Order.objects.count() == 1


@pytest.mark.parametrize("form", [{"quantity": 0, "attempt": "a"}, {"quantity": 2, "attempt": "a"},
                                  {"quantity": 1, "attempt": "bad key!"}, {}])  # fmt: skip
def test_bad_buy_forms_buy_nothing(client, make_sale, form):
    sale = make_sale(quantity=5, limit=1)
    client.force_login(User.objects.create_user("fay", password="x" * 20))

    response = client.post(reverse("purchase:buy", args=[sale.pk]), form, follow=True)

    assert response.status_code == 200
    assert not Order.objects.exists()


def test_anonymous_shoppers_are_sent_to_sign_in(client, make_sale):
    sale = make_sale()

    assert "Sign in</a> to buy" in client.get(reverse("shop:sale", args=[sale.pk])).content.decode()
    response = client.post(reverse("purchase:buy", args=[sale.pk]), {"quantity": 1, "attempt": "a"})
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_someone_elses_purchase_page_is_404(client, make_sale):
    sale = make_sale()
    client.force_login(User.objects.create_user("gus", password="x" * 20))
    page = client.get(reverse("shop:sale", args=[sale.pk])).content.decode()
    status_url = client.post(reverse("purchase:buy", args=[sale.pk]), {"quantity": 1, "attempt": attempt_token(page)})[
        "Location"
    ]

    client.force_login(User.objects.create_user("hal", password="x" * 20))
    assert client.get(status_url).status_code == 404


def test_the_buy_form_caps_a_purchase_like_the_api_does(client, make_sale, settings):
    # Given a sale whose per-shopper limit is above what one purchase may ask for
    sale = make_sale(quantity=50, limit=settings.PURCHASE_MAX_QUANTITY + 5)
    client.force_login(User.objects.create_user("ivy", password="x" * 20))
    too_many = settings.PURCHASE_MAX_QUANTITY + 1

    response = client.post(reverse("purchase:buy", args=[sale.pk]), {"quantity": too_many, "attempt": "a"}, follow=True)

    assert f"less than or equal to {settings.PURCHASE_MAX_QUANTITY}" in response.content.decode()
    assert redis_sales.sale_remaining(sale.pk) == 50
    assert (
        f'max="{settings.PURCHASE_MAX_QUANTITY}"' in client.get(reverse("shop:sale", args=[sale.pk])).content.decode()
    )
