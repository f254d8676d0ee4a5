import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_home_page_lists_products_and_the_live_sale(client):
    call_command("seed_demo")

    response = client.get("/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Aurora wireless headphones" in page
    assert "Aurora midnight drop" in page
    assert "€34.90" in page  # the mugs' price, as money
    assert "MUGS-4" not in page and "in stock" not in page  # a shopper sees neither codes nor stock


def test_home_page_of_an_empty_shop(client):
    response = client.get("/")

    assert response.status_code == 200
    assert "The shop is empty for now." in response.content.decode()
