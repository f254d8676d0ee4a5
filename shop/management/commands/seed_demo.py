"""A demo catalog, stock, two flash sales and a staff account; safe to run again."""

import secrets
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from inventory.services import stock_get_or_create, stock_receive
from shop.models import SKU, FlashSale, Product, Wave
from shop.services import flash_sale_create

CATALOG = [
    {
        "slug": "aurora-headphones",
        "name": "Aurora wireless headphones",
        "description": "Over-ear, noise cancelling, 40 hours of battery.",
        "skus": [
            ("AURORA-BLK", {"colour": "black"}, "199.00", 120),
            ("AURORA-SLV", {"colour": "silver"}, "199.00", 80),
        ],
    },
    {
        "slug": "trail-runner-shoes",
        "name": "Trail runner shoes",
        "description": "Grippy, light and waterproof.",
        "skus": [
            ("TRAIL-42", {"size": "42"}, "129.00", 30),
            ("TRAIL-43", {"size": "43"}, "129.00", 30),
            ("TRAIL-44", {"size": "44"}, "129.00", 4),
        ],
    },
    {
        "slug": "pour-over-kettle",
        "name": "Pour-over kettle",
        "description": "Gooseneck spout, 0.9 litres, temperature control.",
        "skus": [("KETTLE-STD", {}, "79.50", 60)],
    },
    {
        "slug": "merino-hoodie",
        "name": "Merino hoodie",
        "description": "Soft, warm and odour-resistant.",
        "skus": [
            ("HOODIE-S", {"size": "S"}, "89.00", 25),
            ("HOODIE-M", {"size": "M"}, "89.00", 40),
            ("HOODIE-L", {"size": "L"}, "89.00", 35),
        ],
    },
    {
        "slug": "mechanical-keyboard",
        "name": "Mechanical keyboard",
        "description": "Hot-swappable switches, aluminium case.",
        "skus": [("KEYB-TKL", {"layout": "tenkeyless"}, "149.00", 300)],
    },
    {
        "slug": "ceramic-mug-set",
        "name": "Ceramic mug set",
        "description": "Four hand-glazed mugs.",
        "skus": [("MUGS-4", {"pieces": "4"}, "34.90", 3)],
    },
]

SALES = [
    {"sku": "AURORA-BLK", "title": "Aurora midnight drop", "price": "99.00", "quantity": 100, "limit": 1,
     "starts_in": timedelta(0), "lasts": timedelta(hours=6)},
    {"sku": "KEYB-TKL", "title": "Keyboard lightning deal", "price": "89.00", "quantity": 200, "limit": 2,
     "starts_in": timedelta(minutes=5), "lasts": timedelta(hours=2), "pass_challenge": True},
    {"sku": "AURORA-SLV", "title": "Aurora silver, waiting room", "price": "109.00", "quantity": 50, "limit": 1,
     "starts_in": timedelta(minutes=15), "lasts": timedelta(hours=2), "waiting_room_opens_in": timedelta(0),
     "let_through_per_second": 5},
    {"sku": "KETTLE-STD", "title": "Kettle in three waves", "price": "49.00", "quantity": 30, "limit": 1,
     "starts_in": timedelta(0), "lasts": timedelta(hours=1),
     "waves": [(timedelta(0), 10), (timedelta(minutes=10), 10), (timedelta(minutes=20), 10)]},
]  # fmt: skip


class Command(BaseCommand):
    help = (
        "Load the demo catalog, stock, two live flash sales (one in waves), two upcoming ones (one "
        "behind a purchase pass, one with a waiting room), the staff account `admin` and the shopper "
        "account `shopper`."
    )

    def add_arguments(self, parser):
        parser.add_argument("--admin-only", action="store_true", help="Only the staff account: an empty shop.")

    def handle(self, *args, admin_only=False, **options):
        with transaction.atomic():
            admin = self.ensure_admin()
            if admin_only:
                self.stdout.write(self.style.SUCCESS("The staff account is in place."))
                return
            for product_data in CATALOG:
                self.ensure_product(product_data, admin)
            for sale_data in SALES:
                self.ensure_sale(sale_data, admin)
            self.ensure_shopper()
        self.stdout.write(self.style.SUCCESS("Demo data is in place."))

    def ensure_admin(self) -> User:
        return self.ensure_account(
            "admin", settings.DEMO_ADMIN_PASSWORD, is_staff=True, is_superuser=True, email="admin@example.com"
        )

    def ensure_shopper(self) -> User:
        return self.ensure_account("shopper", settings.DEMO_SHOPPER_PASSWORD, email="shopper@example.com")

    def ensure_account(self, username: str, password: str, **defaults) -> User:
        """The account, with `password` (or, made now without one, a generated one, printed once)."""
        user, created = User.objects.get_or_create(username=username, defaults=defaults)
        if created and not password:
            password = secrets.token_urlsafe(12)
            self.stdout.write(f"Created the account: {username} / {password}")
        if password and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        return user

    def ensure_product(self, data: dict, admin: User) -> None:
        product, _ = Product.objects.get_or_create(
            slug=data["slug"], defaults={"name": data["name"], "description": data["description"]}
        )
        for code, attributes, price, initial_units in data["skus"]:
            sku, _ = SKU.objects.get_or_create(
                code=code, defaults={"product": product, "attributes": attributes, "price": Decimal(price)}
            )
            stock = stock_get_or_create(sku=sku)
            if not stock.movements.exists():
                stock_receive(stock=stock, quantity=initial_units, actor=admin, reason="Demo opening stock")

    def ensure_sale(self, data: dict, admin: User) -> None:
        sku = SKU.objects.get(code=data["sku"])
        now = timezone.now()
        if FlashSale.objects.on_offer().filter(sku=sku, title=data["title"], ends_at__gt=now).exists():
            return
        starts_at = now + data["starts_in"]
        flash_sale_create(
            sku=sku,
            title=data["title"],
            price=Decimal(data["price"]),
            quantity=data["quantity"],
            starts_at=starts_at,
            ends_at=starts_at + data["lasts"],
            per_user_limit=data["limit"],
            actor=admin,
            waves=[Wave(starts_at + offset, units) for offset, units in data.get("waves", [])],
            pass_challenge=data.get("pass_challenge", False),
            waiting_room_opens_at=now + data["waiting_room_opens_in"] if "waiting_room_opens_in" in data else None,
            let_through_per_second=data.get("let_through_per_second", 100),
        )
