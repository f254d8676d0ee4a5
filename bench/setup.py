"""The benchmark's data: a crowd of shoppers with tokens, and two sales to storm."""

import time
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from inventory.services import stock_get_or_create, stock_receive
from orders.invariants import check_invariants
from orders.models import Order
from shop.models import SKU, Product
from shop.services import flash_sale_create, flash_sale_preheat, flash_sale_reconcile


class Crowd:
    def __init__(self, tokens: list[str], redis_sale: int, database_sale: int):
        self.tokens, self.redis_sale, self.database_sale = tokens, redis_sale, database_sale
        self.accepted: list[str] = []
        self.storm_ended = 0.0

    def headers(self, index: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[index]}"}

    def wait_for_writer(self, timeout: float) -> float:
        """Seconds from the end of the Redis storm until every accepted purchase is an order."""
        deadline = time.monotonic() + timeout
        while Order.objects.filter(reservation_id__in=self.accepted).count() < len(self.accepted):
            if time.monotonic() > deadline:
                return float("nan")
            time.sleep(0.05)
        return round(max(0.0, time.monotonic() - self.storm_ended), 3)

    def invariants(self) -> dict:
        from shop.models import FlashSale

        # The database path does not touch Redis: let reconciliation bring it up to date.
        flash_sale_reconcile(sale=FlashSale.objects.get(pk=self.database_sale))
        return check_invariants().as_dict()


def crowd_and_sales(*, users: int, quantity: int) -> Crowd:
    run = timezone.now().strftime("%Y%m%d%H%M%S")
    # "!" is Django's mark of an unusable password: these shoppers only ever hold tokens.
    unusable = "!"
    crowd = User.objects.bulk_create([User(username=f"bench-{run}-{i}", password=unusable) for i in range(users)])
    tokens = [str(AccessToken.for_user(user)) for user in crowd]
    product = Product.objects.create(name=f"Benchmark {run}", slug=f"benchmark-{run}")
    sales = []
    for path in ("redis", "database"):
        sku = SKU.objects.create(product=product, code=f"BENCH-{run}-{path}", price=Decimal("10.00"))
        stock_receive(stock=stock_get_or_create(sku=sku), quantity=quantity, actor=None, reason="benchmark")
        now = timezone.now()
        sale = flash_sale_create(sku=sku, price=Decimal("5.00"), quantity=quantity, per_user_limit=1, actor=None,
                                 starts_at=now - timedelta(seconds=1), ends_at=now + timedelta(hours=1),
                                 title=f"Benchmark {path}")  # fmt: skip
        flash_sale_preheat(sale=sale)
        sales.append(sale.pk)
    return Crowd(tokens, *sales)
