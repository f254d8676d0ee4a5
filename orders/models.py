from django.conf import settings
from django.db import models
from django.db.models import F, Q


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

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Failed reservation {self.reservation_id}"


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
