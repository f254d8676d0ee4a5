from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce

if TYPE_CHECKING:
    from inventory.redis_sales import GiveBack


class ProductQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)


class Product(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True, help_text="Inactive products are hidden from shoppers.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SKU(models.Model):
    """A sellable variant of a product; stock and prices are per SKU."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="skus")
    code = models.CharField(max_length=64, unique=True, help_text="Stock-keeping unit code, e.g. TSHIRT-BLK-M.")
    attributes = models.JSONField(default=dict, blank=True, help_text='Variant attributes, e.g. {"size": "M"}.')
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "SKU"
        verbose_name_plural = "SKUs"
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="sku_price_not_negative"),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def variant(self) -> str:
        """The variant as a shopper names it, from its attributes' values in the order of their
        names ("Black / M" of colour and size: PostgreSQL keeps no order of its own); empty for a
        product's only variant."""
        values = (self.attributes[name] for name in sorted(self.attributes))
        return " / ".join(str(value) for value in values if value not in ("", None))


MAX_STOCK_SHARDS = 64


class FlashSaleQuerySet(models.QuerySet):
    def on_offer(self):
        return self.filter(status__in=FlashSale.OPEN_STATUSES)

    def with_units_sold(self):
        return self.annotate(units_sold_annotated=Coalesce(Sum("shards__units_sold"), 0))

    def locked(self):
        """The sale's row, locked for a change, in the shop's one lock order (docs/locking.md):
        the sale's row, then its shard rows in index order, then stock rows, then orders. FOR NO
        KEY UPDATE, of the sale's row alone: it excludes every other locker of the sale, but not
        the key-share lock that each new order's foreign key takes, so an order writer's batch
        (which holds its shard's row) never waits on it."""
        return self.select_for_update(no_key=True, of=("self",))


class FlashSale(models.Model):
    """A limited quantity of one SKU at a sale price, within a time window.

    The quantity is allocated from the SKU's stock when the sale is created, so it can never
    be sold twice; units not sold when the sale ends go back to available stock.
    """

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        LIVE = "live"
        ENDED = "ended"
        CANCELLED = "cancelled"

    # A sale that may still sell: admission, the writer and the jobs of its clock go by this.
    OPEN_STATUSES = frozenset({Status.SCHEDULED, Status.LIVE})

    title = models.CharField(max_length=200, blank=True)
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="flash_sales")
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    quantity = models.PositiveIntegerField(help_text="Units on offer, allocated from stock when the sale is created.")
    stock_shards = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_STOCK_SHARDS)],
        help_text="Redis shards the units are split over, for a sale too hot for one Redis primary. "
        "Fixed when the sale is created.",
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    per_user_limit = models.PositiveIntegerField(default=1, help_text="Most units one shopper may hold.")
    waves = models.JSONField(
        default=list,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text='Units released in stages: [{"at": time, "units": n}, ...] in order, inside the window, '
        "summing to the quantity. Empty: every unit at the start.",
    )
    requires_pass = models.BooleanField(
        default=False,
        help_text="A purchase must carry a purchase pass, issued to a signed-in shopper shortly before the "
        "start. Fixed when the sale is created.",
    )
    pass_challenge = models.BooleanField(
        default=False,
        help_text="A pass is issued only against a solved proof-of-work challenge (the storefront solves it "
        "during the countdown). Fixed when the sale is created.",
    )
    waiting_room_opens_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Shoppers who come from then until the start wait in line and are drawn in a random order at "
        "the start; later ones queue behind them. Empty: no waiting room. Fixed when the sale is created.",
    )
    let_through_per_second = models.PositiveIntegerField(
        default=100,
        validators=[MinValueValidator(1)],
        help_text="Shoppers of the waiting room let through to the purchase each second, in their order.",
    )
    waiting_room_seed = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="The secret that orders the waiting room's draw; shown once the sale started, for audit.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED, db_index=True)
    version = models.PositiveIntegerField(default=1, help_text="Bumped by every edit; an edit names the one it read.")
    admissions = models.JSONField(
        default=dict, blank=True, help_text="Admission answers by outcome, kept from Redis when the sale ended."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = FlashSaleQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="flash_sale_quantity_positive"),
            models.CheckConstraint(condition=Q(per_user_limit__gt=0), name="flash_sale_limit_positive"),
            models.CheckConstraint(condition=Q(price__gte=0), name="flash_sale_price_not_negative"),
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="flash_sale_ends_after_start"),
            models.CheckConstraint(
                condition=Q(stock_shards__gte=1) & Q(stock_shards__lte=MAX_STOCK_SHARDS),
                name="flash_sale_stock_shards_in_range",
            ),
            models.CheckConstraint(
                condition=Q(requires_pass=True) | Q(pass_challenge=False),
                name="flash_sale_challenge_needs_pass",
                violation_error_message="A proof-of-work challenge is asked for a purchase pass: require one too.",
            ),
            models.CheckConstraint(
                condition=Q(waiting_room_opens_at__isnull=True) | Q(waiting_room_opens_at__lt=models.F("starts_at")),
                name="flash_sale_waiting_room_opens_before_start",
                violation_error_message="The waiting room opens before the sale starts.",
            ),
            models.CheckConstraint(condition=Q(let_through_per_second__gt=0), name="flash_sale_lets_some_through"),
        ]

    def __str__(self) -> str:
        return self.title or f"Flash sale #{self.pk} of {self.sku_id and self.sku.code}"

    @property
    def units_sold(self) -> int:
        """Units in orders that are not cancelled, summed over the sale's shards (or as a
        queryset's `with_units_sold()` annotated it)."""
        annotated = getattr(self, "units_sold_annotated", None)
        if annotated is not None:
            return annotated
        return self.shards.aggregate(units=Sum("units_sold"))["units"] or 0

    @property
    def remaining(self) -> int:
        return self.quantity - self.units_sold

    @property
    def wave_list(self) -> list["Wave"]:
        """The waves, in order."""
        return [Wave(datetime.fromisoformat(wave["at"]), wave["units"]) for wave in self.waves]

    def units_held_back(self, now: datetime) -> int:
        """Units of waves still to come: not on offer yet. The Redis path holds back the same
        units by Redis TIME (inventory/lua/waves.lua)."""
        return sum(wave.units for wave in self.wave_list if wave.at > now)

    def units_released(self, now: datetime) -> int:
        """Units the sale may have sold by `now`: all but those of waves still to come."""
        return self.quantity - self.units_held_back(now)

    def next_wave_at(self, now: datetime) -> datetime | None:
        """When the next wave opens, by this process's clock (shown to shoppers; admission goes
        by Redis's clock)."""
        return next((wave.at for wave in self.wave_list if wave.at > now), None)

    # The database's side of the sale's Redis counters, read through the orders app's relations.

    def reservations_settled(self, reservation_ids: Iterable[str]) -> dict[str, "GiveBack"]:
        """Those of the sale's reservations that ended as an order or a failed result, each with
        what Redis gives back for it when the writer finishes its stream entry."""
        ids = list(reservation_ids)
        if not ids:
            return {}
        return {**self.orders.give_back(ids), **self.failed_reservations.give_back(ids)}

    def reservation_units(self, *, shard: int = 0, shards: int = 1) -> dict[str, int]:
        """Units of every reservation of the sale (of one stock shard's shoppers) that the database
        has, as an order or a failure."""
        return {
            **self.failed_reservations.in_shard(shard=shard, shards=shards).units_by_reservation(),
            **self.orders.in_shard(shard=shard, shards=shards).units_by_reservation(),
        }

    def reservation_users(self, *, shard: int = 0, shards: int = 1) -> set[int]:
        """The shoppers (of one stock shard) with a reservation of the sale in the database."""
        return (
            self.failed_reservations.in_shard(shard=shard, shards=shards).users()
            | self.orders.in_shard(shard=shard, shards=shards).users()
        )


class Wave(NamedTuple):
    """Units of a sale released at a time."""

    at: datetime
    units: int


class FlashSaleShard(models.Model):
    """One stock shard of a sale, in the database: the units its shoppers bought, and its
    allotment, the share of the sale's quantity it may sell.

    The order writer of a shard locks this row, not the sale's, so the shards of one sale write
    in parallel. Allotments always sum to the sale's quantity; a shard whose writer finds its
    allotment spent borrows what others have not sold (`shop.services.flash_sale_shards_rebalance`),
    so no shard can sell more than the sale has. Redis moves units between shards on its own
    (admission cannot wait for the database); the two allotments need not agree, only each total.
    """

    flash_sale = models.ForeignKey(FlashSale, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveSmallIntegerField()
    allotment = models.PositiveIntegerField()
    units_sold = models.PositiveIntegerField(default=0, help_text="Units in orders that are not cancelled.")

    class Meta:
        ordering = ["flash_sale", "index"]
        constraints = [
            models.UniqueConstraint(fields=["flash_sale", "index"], name="flash_sale_shard_unique"),
            models.CheckConstraint(
                condition=Q(units_sold__lte=models.F("allotment")), name="flash_sale_shard_never_oversold"
            ),
        ]

    def __str__(self) -> str:
        return f"Shard {self.index} of flash sale #{self.flash_sale_id}"

    @property
    def room(self) -> int:
        return self.allotment - self.units_sold


class FlashSaleEdit(models.Model):
    """One edit of a sale's terms: who, when, and each changed field as [before, after]."""

    flash_sale = models.ForeignKey(FlashSale, on_delete=models.CASCADE, related_name="edits")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    changes = models.JSONField()
    version = models.PositiveIntegerField(help_text="The sale's version after this edit.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Edit of {self.flash_sale} to version {self.version}"


class SaleDrift(models.Model):
    """A disagreement between Redis and the database that reconciliation found and repaired."""

    flash_sale = models.ForeignKey(FlashSale, on_delete=models.CASCADE, related_name="drifts")
    remaining_before = models.IntegerField(help_text="Units on offer according to Redis.")
    remaining_expected = models.IntegerField(help_text="Units on offer according to the database.")
    in_flight = models.IntegerField(help_text="Units in reservations not yet written as orders.")
    buyers_repaired = models.IntegerField(help_text="Shoppers whose tally in Redis was wrong.")
    terms_repaired = models.BooleanField(
        default=False, help_text="Redis had other terms (end, per-user limit) than the database."
    )
    found_at = models.DateTimeField(auto_now_add=True, db_index=True)
    notified_at = models.DateTimeField(null=True, blank=True, help_text="When sales staff were e-mailed about it.")

    class Meta:
        ordering = ["-found_at"]

    def __str__(self) -> str:
        return f"Drift in {self.flash_sale} at {self.found_at:%Y-%m-%d %H:%M:%S}"
