from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.models import User
from inventory.models import Stock
from orders.models import Order
from shop.models import SKU, FlashSale, Product
from shop.services import flash_sale_shards_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"shopper{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    name = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.Sequence(lambda n: f"product-{n}")


class SKUFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SKU

    product = factory.SubFactory(ProductFactory)
    code = factory.Sequence(lambda n: f"SKU-{n:05d}")
    price = Decimal("25.00")


class StockFactory(factory.django.DjangoModelFactory):
    """An empty Stock row; tests add units through the inventory services."""

    class Meta:
        model = Stock

    sku = factory.SubFactory(SKUFactory)


class FlashSaleFactory(factory.django.DjangoModelFactory):
    """A live sale row; it does not allocate stock (use shop.services.flash_sale_create for that)."""

    class Meta:
        model = FlashSale
        skip_postgeneration_save = True

    sku = factory.SubFactory(SKUFactory)
    price = Decimal("10.00")
    quantity = 10
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=1))
    ends_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))
    status = FlashSale.Status.LIVE

    @factory.post_generation
    def shards(sale, create, extracted, **kwargs):
        if create:
            flash_sale_shards_create(sale=sale)


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    user = factory.SubFactory(UserFactory)
    sku = factory.SubFactory(SKUFactory)
    quantity = 1
    unit_price = Decimal("10.00")
    total = factory.LazyAttribute(lambda order: order.unit_price * order.quantity)
    reservation_id = factory.Sequence(lambda n: f"r-{n:08d}")
    pay_by = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=15))
