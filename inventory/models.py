from django.conf import settings
from django.db import models
from django.db.models import F, Q


class StockQuerySet(models.QuerySet):
    def with_available(self):
        return self.annotate(available_units=F("on_hand") - F("allocated"))

    def low(self):
        return self.with_available().filter(available_units__lte=F("low_stock_threshold"))


class Stock(models.Model):
    """The units of one SKU in the warehouse.

    `allocated` units are held for flash sales and unpaid orders; only `available` units can
    be allocated again. The database enforces the bounds, whatever code writes the row.
    """

    sku = models.OneToOneField("shop.SKU", on_delete=models.PROTECT, related_name="stock")
    on_hand = models.IntegerField(default=0, help_text="Units physically in stock.")
    allocated = models.IntegerField(default=0, help_text="Units held for flash sales and unpaid orders.")
    low_stock_threshold = models.PositiveIntegerField(
        default=5, help_text="An alert opens when available units fall to or below this."
    )
    version = models.PositiveBigIntegerField(default=1, help_text="Bumped by every write; guards concurrent edits.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = StockQuerySet.as_manager()

    class Meta:
        ordering = ["sku__code"]
        constraints = [
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="stock_on_hand_not_negative"),
            models.CheckConstraint(
                condition=Q(allocated__gte=0) & Q(allocated__lte=F("on_hand")),
                name="stock_allocated_within_on_hand",
            ),
        ]

    def __str__(self) -> str:
        return f"Stock of {self.sku}"

    @property
    def available(self) -> int:
        return self.on_hand - self.allocated

    @property
    def is_low(self) -> bool:
        return self.available <= self.low_stock_threshold


class StockMovement(models.Model):
    """One change of one Stock row: the append-only ledger.

    The deltas of all movements of a SKU sum to its current `on_hand` and `allocated`.
    Rows are never updated or deleted.
    """

    class Kind(models.TextChoices):
        IN = "in", "Stock in"
        OUT = "out", "Stock out"
        ADJUST = "adjust", "Adjust to count"
        ALLOCATE = "allocate", "Allocate"
        RELEASE = "release", "Release"
        SELL = "sell", "Sell"
        RETURN = "return", "Return"

    # The ledger's columns, as the API, the back office and its CSV export show them (the SKU
    # by its code, the actor by username).
    COLUMNS = [
        "id", "created_at", "sku", "kind", "quantity", "on_hand_delta", "allocated_delta", "on_hand_after",
        "allocated_after", "actor", "reason", "reference",
    ]  # fmt: skip

    stock = models.ForeignKey(Stock, on_delete=models.PROTECT, related_name="movements")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    quantity = models.PositiveIntegerField(help_text="Units moved.")
    on_hand_delta = models.IntegerField()
    allocated_delta = models.IntegerField()
    on_hand_after = models.IntegerField()
    allocated_after = models.IntegerField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=255)
    reference = models.CharField(max_length=100, blank=True, help_text='What caused it, e.g. "order:12", "sale:3".')
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["stock", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.quantity} of {self.stock.sku}"


class StockAlertQuerySet(models.QuerySet):
    def open(self):
        return self.filter(closed_at__isnull=True)


class StockAlert(models.Model):
    """Opened when a SKU's available stock falls to its threshold; closed when restocked."""

    stock = models.ForeignKey(Stock, on_delete=models.PROTECT, related_name="alerts")
    available_at_open = models.IntegerField()
    threshold_at_open = models.PositiveIntegerField()
    opened_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True, help_text="When staff were e-mailed about it.")

    objects = StockAlertQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["stock"], condition=Q(closed_at__isnull=True), name="stock_alert_one_open_per_stock"
            ),
        ]

    def __str__(self) -> str:
        return f"Low stock: {self.stock.sku}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None
