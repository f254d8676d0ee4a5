"""The benchmark's data: a crowd of shoppers with tokens, and the sales each phase storms."""

import multiprocessing
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.cached_db import SessionStore
from django.db import connections
from django.middleware.csrf import CSRF_SECRET_LENGTH
from django.utils import timezone
from django.utils.crypto import get_random_string
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from accounts.sessions import CARD, CARD_COOKIE, shopper_card_cookie
from inventory import redis_sales
from inventory.services import stock_get_or_create, stock_receive
from orders.invariants import check_invariants
from orders.models import Order
from orders.writer import order_writer_drain
from purchase.admission import purchase_admit
from purchase.reservations import reservation_id_new
from purchase.waiting_room import waiting_room_join
from shop.models import SKU, FlashSale, Product
from shop.services import flash_sale_create, flash_sale_preheat, flash_sale_reconcile


@dataclass
class Stage:
    tokens_file: Path
    one_token_file: Path
    # A crowd small enough that each web process keeps its tokens verified (VERIFIED_TOKENS), as
    # it keeps the one token of the rate-limited phase: so that the two refusals compare alike.
    few_tokens_file: Path
    # The same shoppers, each with their ticket of a waiting room that lets one through a second.
    queued_tokens_file: Path
    # Shoppers signed in to the storefront: a session cookie and a CSRF cookie each.
    sessions_file: Path
    sales: dict[str, int] = field(default_factory=dict)  # phase -> sale id

    def orders_of(self, phase: str) -> int:
        return Order.objects.filter(flash_sale_id=self.sales[phase]).count()

    def wait_for_orders(self, phase: str, count: int, since: float, timeout: float = 300) -> float:
        """Seconds from `since` until the sale has `count` orders (the writer's lag)."""
        deadline = time.monotonic() + timeout
        while self.orders_of(phase) < count:
            if time.monotonic() > deadline:
                return float("nan")
            time.sleep(0.02)
        return round(max(0.0, time.monotonic() - since), 3)

    def fill_for_the_writer(self, reservations: int, sale_id: int | None = None) -> None:
        """`reservations` admitted into a writer sale's stream (into each of its shards, from a
        shopper of each), none scheduled for writing."""
        sale = FlashSale.objects.get(pk=sale_id or self.sales["writer"])
        shoppers = [sale.created_by_id + shard for shard in range(sale.stock_shards)]
        for i in range(reservations):
            key, user_id = f"drain-{i}", shoppers[i % len(shoppers)]
            rid = reservation_id_new(sale_id=sale.pk, user_id=user_id, idempotency_key=key)
            redis_sales.reservation_admit(
                sale_id=sale.pk, user_id=user_id, quantity=1, reservation_id=rid, idempotency_key=key,
                shard=redis_sales.home_shard(user_id, sale.stock_shards), shards=sale.stock_shards,
            )  # fmt: skip

    def drain_writer_sale(self, *, profile: bool = False) -> float:
        """Seconds one consumer takes to write every reservation waiting in the writer sale;
        with `profile`, pyinstrument's account of them is printed."""
        profiler = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        began = time.perf_counter()
        _drain(self.sales["writer"], 0, 1, "bench")
        seconds = time.perf_counter() - began
        if profiler:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False), flush=True)
        return seconds

    def drain_in_parallel(self, streams: list[tuple[int, int, int]]) -> float:
        """Seconds one writer process per stream (sale id, shard, shards) takes, all at once, to
        write every reservation waiting in them: how writers share PostgreSQL."""
        connections.close_all()  # each process opens its own
        began = time.perf_counter()
        context = multiprocessing.get_context("fork")
        writers = [
            context.Process(target=_drain, args=(*stream, f"bench-{stream[0]}-{stream[1]}")) for stream in streams
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        return time.perf_counter() - began

    def invariants(self) -> dict:
        # The database path does not touch Redis: reconciliation brings it up to date.
        flash_sale_reconcile(sale=FlashSale.objects.get(pk=self.sales["database"]))
        return check_invariants().as_dict()


def _drain(sale_id: int, shard: int, shards: int, consumer: str) -> None:
    while not order_writer_drain(sale_id=sale_id, consumer=consumer, shard=shard, shards=shards):
        pass


def _sale(
    product: Product,
    name: str,
    *,
    quantity: int,
    limit: int,
    owner: User | None = None,
    shards: int = 1,
    requires_pass: bool = False,
    waiting_room: bool = False,
) -> FlashSale:
    sku = SKU.objects.create(product=product, code=f"{product.slug}-{name}".upper(), price=Decimal("10.00"))
    stock_receive(stock=stock_get_or_create(sku=sku), quantity=quantity, actor=None, reason="benchmark")
    now = timezone.now()
    sale = flash_sale_create(sku=sku, price=Decimal("5.00"), quantity=quantity, per_user_limit=limit, actor=owner,
                             starts_at=now - timedelta(seconds=1), ends_at=now + timedelta(hours=2),
                             title=f"Benchmark {name}", stock_shards=shards, requires_pass=requires_pass,
                             # A waiting room that lets one through a second: its line is joined
                             # after the start, so place p's turn comes p - 1 seconds in.
                             waiting_room_opens_at=now - timedelta(seconds=2) if waiting_room else None,
                             let_through_per_second=1)  # fmt: skip
    flash_sale_preheat(sale=sale)
    return sale


# Shoppers of the crowd signed in to the storefront, as a sign-in leaves them.
SIGNED_IN = 5_000


def _signed_in(users: list[User]) -> list[str]:
    """A Cookie header's value per shopper: a session and its card as signing in writes them,
    and a CSRF secret."""
    cookies = []
    for user in users:
        session = SessionStore()
        session.update(
            {
                SESSION_KEY: str(user.pk),
                BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash(),
                CARD: {"name": user.get_username(), "staff": False},
            }
        )
        session.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}; "
                       f"{CARD_COOKIE}={shopper_card_cookie(session[CARD])}; "
                       f"{settings.CSRF_COOKIE_NAME}={get_random_string(CSRF_SECRET_LENGTH)}")  # fmt: skip
    return cookies


def stage(*, users: int, folder: Path, writer_reservations: int) -> Stage:
    run = timezone.now().strftime("%Y%m%d%H%M%S")
    # These shoppers only ever hold tokens: no password can sign them in.
    unusable = make_password(None)
    crowd = User.objects.bulk_create([User(username=f"bench-{run}-{i}", password=unusable) for i in range(users)])
    folder.mkdir(parents=True, exist_ok=True)
    result = Stage(
        tokens_file=folder / "tokens.txt",
        one_token_file=folder / "one-token.txt",
        few_tokens_file=folder / "few-tokens.txt",
        queued_tokens_file=folder / "queued-tokens.txt",
        sessions_file=folder / "sessions.txt",
    )
    result.tokens_file.write_text("".join(f"{AccessToken.for_user(user)}\n" for user in crowd))
    result.one_token_file.write_text(f"{AccessToken.for_user(crowd[0])}\n")
    result.few_tokens_file.write_text("".join(f"{AccessToken.for_user(user)}\n" for user in crowd[:1000]))
    result.sessions_file.write_text("".join(f"-\tCookie: {cookie}\n" for cookie in _signed_in(crowd[:SIGNED_IN])))
    product = Product.objects.create(name=f"Benchmark {run}", slug=f"bench-{run}")
    # Enough units that no storm sells out, and a limit no shopper reaches.
    result.sales["accepted"] = _sale(product, "accepted", quantity=2_000_000, limit=1_000).pk
    result.sales["database"] = _sale(product, "database", quantity=2_000_000, limit=1_000).pk
    sold_out = _sale(product, "sold-out", quantity=1, limit=1)
    purchase_admit(sale_id=sold_out.pk, user_id=crowd[-1].pk, quantity=1, idempotency_key="the-only-unit")
    result.sales["sold_out"] = sold_out.pk
    result.sales["pass"] = _sale(product, "pass", quantity=1_000, limit=1, requires_pass=True).pk
    queued = _sale(product, "queued", quantity=1_000, limit=1, waiting_room=True)
    result.sales["queued"] = queued.pk
    # Ahead of the crowd, a line longer than the whole benchmark lasts in seconds: no shopper's
    # turn comes, every try is refused by the turn check (ids of no account: the line takes any).
    for phantom in range(10**9, 10**9 + 3600):
        waiting_room_join(sale_id=queued.pk, user_id=phantom)
    tickets = [waiting_room_join(sale_id=queued.pk, user_id=user.pk).ticket for user in crowd[:1000]]
    result.queued_tokens_file.write_text(
        "".join(
            f"{AccessToken.for_user(user)}\tQueue-Ticket: {ticket}\n"
            for user, ticket in zip(crowd[:1000], tickets, strict=True)
        )
    )
    for name in ("writer", "writer-2", "writer-3"):
        result.sales[name] = _sale(
            product, name, quantity=writer_reservations, limit=writer_reservations, owner=crowd[-2]
        ).pk
    # One sale of two stock shards, bought by crowd[-2] and crowd[-1] (one shopper per shard).
    result.sales["writer-sharded"] = _sale(
        product, "writer-sharded", quantity=2 * writer_reservations, limit=writer_reservations, owner=crowd[-2],
        shards=2,
    ).pk  # fmt: skip
    return result
