from collections.abc import Iterable

from django.conf import settings
from django.db import models
from django.db.models import Count, F, Max, Q, Sum
from django.db.models.functions import Coalesce, Mod

from inventory.redis_sales import KEEP, GiveBack


class ShopperRowsQuerySet(models.QuerySet):
    """Rows of a sale's shoppers (by `user_id`)."""

    def in_shard(self, *, shard: int, shards: int):
        """Those whose home is this stock shard (`redis_sales.home_shard`)."""
        if shards == 1:
            return self
        return self.alias(home_shard=Mod("user_id", shards)).filter(home_shard=shard)

    def units_by_reservation(self) -> dict[str, int]:
        return dict(self.values_list("reservation_id", "quantity"))

    def users(self) -> set[int]:
        return set(self.values_list("user_id", flat=True).distinct())


class OrderQuerySet(ShopperRowsQuerySet):
    def not_cancelled(self):
        return self.exclude(status=Order.Status.CANCELLED)

    def paid(self):
        return self.filter(status__in=Order.PAID_STATUSES)

    def units(self) -> int:
        """Units these orders hold: those not cancelled."""
        return self.not_cancelled().aggregate(units=Coalesce(Sum("quantity"), 0))["units"]

    def units_by_user(
        self, *, user_ids: Iterable[int] | None = None, shard: int = 0, shards: int = 1
    ) -> dict[int, int]:
        """Units each user (of one stock shard) holds in these orders that are not cancelled."""
        orders = self.not_cancelled().in_shard(shard=shard, shards=shards)
        if user_ids is not None:
            orders = orders.filter(user_id__in=list(user_ids))
        return dict(orders.values("user_id").annotate(units=Sum("quantity")).values_list("user_id", "units"))

    def give_back(self, reservation_ids: Iterable[str]) -> dict[str, GiveBack]:
        """Those of the reservations that ended as one of these orders, each with what Redis gives
        back for it when the writer finishes its stream entry. A Redis reservation whose request
        the database path wrote as an order (Redis was away for a moment) makes no order of its
        own; Redis never counted the database path's order, so its entry stands for that
        order's units instead of its own."""
        return {
            rid: GiveBack(units=True, tally=True, less=quantity) if admission == Order.Admission.DATABASE else KEEP
            for rid, admission, quantity in self.filter(reservation_id__in=reservation_ids).values_list(
                "reservation_id", "admission", "quantity"
            )
        }

    def tally(self) -> dict:
        """These orders counted and summed by what became of them: `orders`, `units` (not
        cancelled), `*_paid` (paid and kept), `*_cancelled`, `units_refunded`, `units_charged`
        (paid at some time: out of stock for good), `units_unpaid`, `revenue` and
        `last_unit_at`."""
        kept = ~Q(status=Order.Status.CANCELLED)
        paid = Q(status__in=Order.PAID_STATUSES)
        units = {
            "units": kept,
            "units_paid": paid,
            "units_cancelled": ~kept,
            "units_refunded": Q(status=Order.Status.REFUNDED),
            "units_charged": Q(status__in=Order.CHARGED_STATUSES),
            "units_unpaid": Q(status=Order.Status.PENDING_PAYMENT),
        }
        return self.aggregate(
            orders=Count("pk", filter=kept),
            orders_paid=Count("pk", filter=paid),
            orders_cancelled=Count("pk", filter=~kept),
            **{name: Coalesce(Sum("quantity", filter=which), 0) for name, which in units.items()},
            revenue=Sum("total", filter=paid),
            last_unit_at=Max("created_at", filter=kept),
        )


class Order(models.Model):
    """One purchase of one SKU, usually from a flash sale.

    Status only moves along `ALLOWED_TRANSITIONS`, through `orders.services.order_transition`.
    """

    class Status(models.TextChoices):
        PENDING_PAYMENT = "pending_payment", "Pending payment"
        PAID = "paid"
        FULFILLED = "fulfilled"
        CANCELLED = "cancelled"
        REFUNDED = "refunded"

    # Paid, and the money kept.
    PAID_STATUSES = frozenset({Status.PAID, Status.FULFILLED})
    # Paid at some time: the units left stock for good (a refund does not bring them back).
    CHARGED_STATUSES = PAID_STATUSES | {Status.REFUNDED}

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    sku = models.ForeignKey("shop.SKU", on_delete=models.PROTECT, related_name="orders")
    flash_sale = models.ForeignKey(
        "shop.FlashSale", on_delete=models.PROTECT, null=True, blank=True, related_name="orders"
    )
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    reservation_id = models.CharField(
        max_length=128, unique=True, help_text="The admission that created this order; makes order writing idempotent."
    )

    class Admission(models.TextChoices):
        REDIS = "redis", "Redis, written by the order writer"
        DATABASE = "database", "The database-only path"

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING_PAYMENT, db_index=True)
    admission = models.CharField(
        max_length=16,
        choices=Admission.choices,
        default=Admission.REDIS,
        help_text="Which path admitted it. Redis holds no units for an order the database path admitted.",
    )
    pay_by = models.DateTimeField(help_text="Unpaid by then, the order is cancelled and its units released.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="order_unit_price_not_negative"),
            models.CheckConstraint(condition=Q(total=F("unit_price") * F("quantity")), name="order_total_matches"),
        ]
        indexes = [
            models.Index(fields=["flash_sale", "user"]),
            models.Index(fields=["status", "pay_by"]),
        ]
        permissions = [("refund_order", "Can refund paid orders")]

    def __str__(self) -> str:
        return f"Order #{self.pk}"


ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Order.Status.PENDING_PAYMENT: frozenset({Order.Status.PAID, Order.Status.CANCELLED}),
    Order.Status.PAID: frozenset({Order.Status.FULFILLED, Order.Status.REFUNDED}),
    Order.Status.FULFILLED: frozenset(),
    Order.Status.CANCELLED: frozenset(),
    Order.Status.REFUNDED: frozenset(),
}


class OrderTransition(models.Model):
    """The record of one status change of an order."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=20, choices=Order.Status.choices)
    to_status = models.CharField(max_length=20, choices=Order.Status.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.order}: {self.from_status} → {self.to_status}"


class OrderEmail(models.Model):
    """An e-mail to an order's shopper about one of its events. Claimed (this row) before it is
    sent, so that an event mails its shopper at most once however often the task runs."""

    class Kind(models.TextChoices):
        CONFIRMED = "confirmed", "Order confirmed"
        PAID = "paid", "Payment received"
        CANCELLED = "cancelled", "Order cancelled"
        REFUNDED = "refunded", "Order refunded"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="emails")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    claimed_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="Empty: claimed, not sent (no address, or lost).")

    class Meta:
        ordering = ["claimed_at", "id"]
        constraints = [models.UniqueConstraint(fields=["order", "kind"], name="one_email_per_order_event")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.order}"


class FailedReservationQuerySet(ShopperRowsQuerySet):
    def give_back(self, reservation_ids: Iterable[str]) -> dict[str, GiveBack]:
        """Those of the reservations that ended as one of these failures, each with what Redis
        still holds for it and gives back when the writer finishes its stream entry (GIVE_BACK)."""
        failed = self.filter(reservation_id__in=reservation_ids).values_list("reservation_id", "reason")
        return {rid: GIVE_BACK[reason] for rid, reason in failed}


class FailedReservation(models.Model):
    """A reservation Redis accepted that the database refused: its answer is "failed"."""

    class Reason(models.TextChoices):
        SOLD_OUT = "sold_out", "Sold out"
        LIMIT_EXCEEDED = "limit_exceeded", "Per-user limit exceeded"
        SALE_CLOSED = "sale_closed", "The sale was closed"
        UNKNOWN_USER = "unknown_user", "The account no longer exists"
        ACCOUNT_INACTIVE = "account_inactive", "The account was deactivated"
        LOST = "lost", "Lost by Redis before it reached the database"

    reservation_id = models.CharField(max_length=128, unique=True)
    flash_sale = models.ForeignKey("shop.FlashSale", on_delete=models.PROTECT, related_name="failed_reservations")
    user_id = models.BigIntegerField()
    quantity = models.PositiveIntegerField(help_text="0 when it was lost: its request is unknown.")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FailedReservationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Failed reservation {self.reservation_id}"


# What Redis still holds for a reservation that ended without its units in an order, and so
# gives back when the writer finishes it: units back on offer when the database had room for
# them, the shopper's tally unless the database says they hold as much (over the limit).
# Sold out and closed: Redis had counted units the database does not have; they stay taken.
# Lost: Redis no longer holds anything for it.
GIVE_BACK = {
    FailedReservation.Reason.SOLD_OUT: GiveBack(units=False, tally=True),
    FailedReservation.Reason.SALE_CLOSED: GiveBack(units=False, tally=True),
    FailedReservation.Reason.LIMIT_EXCEEDED: GiveBack(units=True, tally=False),
    FailedReservation.Reason.UNKNOWN_USER: GiveBack(units=True, tally=True),
    FailedReservation.Reason.ACCOUNT_INACTIVE: GiveBack(units=True, tally=True),
    FailedReservation.Reason.LOST: KEEP,
}


class PurchaseRefusal(models.Model):
    """The first answer to an Idempotency-Key that the database-only path refused, so that a
    repeat of that request gets the same refusal (the Redis path remembers its own in Redis)."""

    reservation_id = models.CharField(max_length=128, unique=True)
    flash_sale = models.ForeignKey("shop.FlashSale", on_delete=models.CASCADE, related_name="+")
    user_id = models.BigIntegerField()
    quantity = models.PositiveIntegerField()
    code = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Refused {self.reservation_id}: {self.code}"


class PurchasePassUse(models.Model):
    """One use of a purchase pass by a new purchase request on the database-only path, which
    counts a pass's PURCHASE_PASS_USES here, under the sale's row lock, as the Redis path counts
    them in Redis (admit.lua)."""

    nonce = models.CharField(max_length=32, db_index=True)
    reservation_id = models.CharField(max_length=128, unique=True)
    flash_sale = models.ForeignKey("shop.FlashSale", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Pass {self.nonce} used by {self.reservation_id}"


class PaymentAttempt(models.Model):
    """One charge of an order at the payment provider, under its own idempotency key.

    Created before the provider is called and completed after, so that a charge whose answer
    the shop could not record (a crash, a failed commit) is repeated with the same key (the
    provider answers it without charging twice) and completed, by the next payment of the order
    or by the payments sweep.
    """

    class Status(models.TextChoices):
        STARTED = "started", "Sent to the provider"
        SUCCEEDED = "succeeded"
        DECLINED = "declined"
        REFUNDED = "refunded", "Refunded: the order was cancelled while it was charged"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payment_attempts")
    idempotency_key = models.CharField(max_length=64, unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTED)
    reference = models.CharField(max_length=128, blank=True, help_text="The provider's reference of the charge.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one charge of an order under way at any time.
            models.UniqueConstraint(
                fields=["order"], condition=Q(status="started"), name="one_started_payment_per_order"
            )
        ]

    def __str__(self) -> str:
        return f"Payment {self.idempotency_key} of {self.order}: {self.status}"


class Refund(models.Model):
    """The one refund of a paid order: money back at the provider under the order's own key,
    units back to stock. One per order, whatever the retries or races (the database says so)."""

    # The reason is also kept in the order's history and, prefixed, in the ledger (255 each).
    REASON_MAX_LENGTH = 200

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="refund")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    reason = models.TextField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    idempotency_key = models.CharField(max_length=64, unique=True)
    reference = models.CharField(max_length=128, help_text="The provider's reference of the refund.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Refund of {self.order}"


class PurchaseBlockQuerySet(models.QuerySet):
    def in_force(self, now):
        return self.filter(lifted_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class PurchaseBlock(models.Model):
    """Staff keep an account, or every address of a network, from buying in one sale or in all.

    Each web process holds the blocks in force in memory (orders/blocks.py), so a blocked
    purchase is refused without a query. A block is never edited or deleted: it ends at its
    expiry, or when staff lift it, and stays as the record of what was done and why.
    """

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="purchase_blocks"
    )
    network = models.CharField(
        max_length=43, blank=True, help_text="An address or a range in CIDR form, e.g. 203.0.113.0/24 or 2001:db8::/48."
    )
    flash_sale = models.ForeignKey(
        "shop.FlashSale",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="purchase_blocks",
        help_text="Empty: every sale.",
    )
    reason = models.TextField(help_text="Why: kept with the block, for whoever reads it later.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until lifted.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    objects = PurchaseBlockQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(account__isnull=False) & Q(network="")) | (Q(account__isnull=True) & ~Q(network="")),
                name="purchase_block_account_or_network",
                violation_error_message="Block either an account or a network, not both.",
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="purchase_block_has_reason"),
        ]

    def __str__(self) -> str:
        who = f"account {self.account}" if self.account_id else f"network {self.network}"
        return f"{who} from {self.flash_sale or 'every sale'}"


class WaitingRoomDraw(models.Model):
    """The record of a waiting room's draw, made just after its sale started: who came before the
    start (in the order they came), the seed, and the order drawn, which anyone can recompute
    from the other two (orders/waiting_room.py). Never changed."""

    flash_sale = models.OneToOneField("shop.FlashSale", on_delete=models.PROTECT, related_name="waiting_room_draw")
    seed = models.CharField(max_length=64)
    entrants = models.JSONField(default=list, help_text="User ids of the early arrivals, in the order they came.")
    order = models.JSONField(default=list, help_text="The same user ids in the order drawn: first let through first.")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-recorded_at"]

    def __str__(self) -> str:
        return f"Draw of {self.flash_sale}: {len(self.order)} early arrivals"
