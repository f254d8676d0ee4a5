from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q


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


class FlashSaleQuerySet(models.QuerySet):
    def on_offer(self):
        return self.filter(status__in=[FlashSale.Status.SCHEDULED, FlashSale.Status.LIVE])


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

    title = models.CharField(max_length=200, blank=True)
    sku = models.ForeignKey(SKU, on_delete=models.PROTECT, related_name="flash_sales")
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    quantity = models.PositiveIntegerField(help_text="Units on offer, allocated from stock when the sale is created.")
    units_sold = models.PositiveIntegerField(default=0, help_text="Units in orders that are not cancelled.")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    per_user_limit = models.PositiveIntegerField(default=1, help_text="Most units one shopper may hold.")
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
                condition=Q(units_sold__gte=0) & Q(units_sold__lte=models.F("quantity")),
                name="flash_sale_never_oversold",
            ),
        ]

    def __str__(self) -> str:
        return self.title or f"Flash sale #{self.pk} of {self.sku_id and self.sku.code}"

    @property
    def remaining(self) -> int:
        return self.quantity - self.units_sold


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
