import pytest
from django.core.management import call_command

from accounts.models import User
from inventory.models import Stock, StockMovement
from shop.models import SKU, FlashSale, Product

pytestmark = pytest.mark.django_db


def snapshot() -> dict:
    return {
        "products": sorted(Product.objects.values_list("slug", flat=True)),
        "skus": sorted(SKU.objects.values_list("code", "price")),
        "stock": sorted(Stock.objects.values_list("sku__code", "on_hand", "allocated")),
        "movements": StockMovement.objects.count(),
        "sales": sorted(FlashSale.objects.values_list("title", "sku__code", "quantity", "status")),
        "users": sorted(User.objects.values_list("username", "is_staff", "is_superuser")),
    }


def test_seed_demo_twice_leaves_the_same_data_as_once(settings):
    settings.DEMO_ADMIN_PASSWORD = "demo admin password"
    settings.DEMO_SHOPPER_PASSWORD = "demo shopper password"

    call_command("seed_demo", stdout=None)
    once = snapshot()
    call_command("seed_demo")

    assert snapshot() == once
    assert len(once["products"]) >= 6
    assert Product.objects.filter(skus__code__isnull=False).distinct().count() == len(once["products"])
    assert any(count > 1 for count in (p.skus.count() for p in Product.objects.all()))
    statuses = {status for *_, status in once["sales"]}
    assert statuses == {FlashSale.Status.LIVE, FlashSale.Status.SCHEDULED}
    assert User.objects.get(username="admin").check_password("demo admin password")
    shopper = User.objects.get(username="shopper")
    assert shopper.check_password("demo shopper password") and not shopper.is_staff and shopper.email


def test_seed_demo_allocates_sale_units_through_the_ledger():
    call_command("seed_demo")

    for sale in FlashSale.objects.all():
        stock = sale.sku.stock
        assert stock.allocated == sale.quantity
        assert stock.movements.filter(kind="allocate", reference=f"sale:{sale.pk}", quantity=sale.quantity).exists()
    for stock in Stock.objects.all():
        movements = stock.movements.all()
        assert sum(m.on_hand_delta for m in movements) == stock.on_hand
        assert sum(m.allocated_delta for m in movements) == stock.allocated


def test_seed_demo_prints_a_generated_admin_password_once(settings, capsys):
    settings.DEMO_ADMIN_PASSWORD = ""

    call_command("seed_demo")
    first = capsys.readouterr().out
    call_command("seed_demo")
    second = capsys.readouterr().out

    password = first.split("account: admin / ")[1].split()[0]
    assert User.objects.get(username="admin").check_password(password)
    assert "admin / " not in second


def test_admin_only_makes_the_staff_account_and_nothing_else(settings):
    settings.DEMO_ADMIN_PASSWORD = "demo admin password"

    call_command("seed_demo", "--admin-only")

    assert User.objects.get(username="admin").check_password("demo admin password")
    assert not Product.objects.exists()
    assert not StockMovement.objects.exists()
