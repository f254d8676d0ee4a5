from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from inventory.services import stock_allocate, stock_get_or_create
from shop.exceptions import InvalidSaleWindow
from shop.models import SKU, FlashSale


def flash_sale_status_at(*, starts_at: datetime, ends_at: datetime, now: datetime) -> FlashSale.Status:
    if now < starts_at:
        return FlashSale.Status.SCHEDULED
    if now < ends_at:
        return FlashSale.Status.LIVE
    return FlashSale.Status.ENDED


def flash_sale_create(
    *,
    sku: SKU,
    price: Decimal,
    quantity: int,
    starts_at: datetime,
    ends_at: datetime,
    per_user_limit: int,
    actor: AbstractBaseUser | None,
    title: str = "",
) -> FlashSale:
    """Create a sale and allocate its quantity from the SKU's stock, in one transaction.

    Raises InsufficientStock when the SKU has fewer available units than `quantity`, and
    InvalidSaleWindow when the window is empty or already over.
    """
    now = timezone.now()
    if ends_at <= starts_at or ends_at <= now:
        raise InvalidSaleWindow()
    with transaction.atomic():
        sale = FlashSale.objects.create(
            title=title,
            sku=sku,
            price=price,
            quantity=quantity,
            starts_at=starts_at,
            ends_at=ends_at,
            per_user_limit=per_user_limit,
            status=flash_sale_status_at(starts_at=starts_at, ends_at=ends_at, now=now),
            created_by=actor,
        )
        stock_allocate(
            stock=stock_get_or_create(sku=sku),
            quantity=quantity,
            actor=actor,
            reason="Flash sale created",
            reference=f"sale:{sale.pk}",
        )
    return sale
