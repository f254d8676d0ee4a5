"""The sale engine against a plain model of what it promises, under random interleavings.

A Hypothesis state machine draws a sale (one or several stock shards, with or without waves, a
purchase pass and a waiting room) and drives it through the shop's own services and scripts,
against the real PostgreSQL and Redis: purchases from shoppers of every home shard on both
admission paths and through a second process's sale gate (which hears only what Redis
publishes), replays, payments, cancels, expiries, edits, writer batches, moves of units
between shards, reconciles, preheats, Redis losing a shard or the whole sale, time passing (the
next wave opening) and the sale's end. A step may also run while another is paused between two
of its statements (a writer's batch after it decided, under its shard's row lock; a mover
between its take and its give), the competitor in a thread of its own. After every step the
invariants of design.md hold (`check_invariants`, for this sale), and what the model knows holds
too: a replayed accepted purchase gets its first answer, and no reservation Redis accepted is
refused by the database for want of units or because of the limit (Redis never offers what the
database does not have). At the end every accepted reservation is an order or a failed result.

Time moves without a fake clock: the sale moves instead. `time_passes` shifts its window and
waves an hour earlier in the database and reloads its terms into Redis, so Redis's TIME stays
the only clock admission and waves go by, in the test as in production.

`make test` runs SALE_ENGINE_EXAMPLES (default 12) sales of up to SALE_ENGINE_STEPS (25) steps.
A longer run, its seed printed first (SALE_ENGINE_SEED repeats it):

    SALE_ENGINE_EXAMPLES=2000 make test PYTEST_ARGS='tests/orders/test_sale_engine_model.py -s'
"""

import contextlib
import os
import random
from datetime import timedelta
from decimal import Decimal

import hypothesis
import pytest
from django.db.models import F
from django.test import override_settings
from django.utils import timezone
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from config.celery import app as celery_app
from core.exceptions import DomainError
from core.redis import redis_client
from inventory import redis_sales
from inventory.redis_sales.gate import SaleGate, sale_gate
from inventory.services import stock_receive
from orders import writer
from orders.invariants import check_invariants
from orders.models import FailedReservation, Order
from orders.services import order_cancel, order_pay, orders_expire_unpaid
from purchase import admission, tasks
from purchase.admission import purchase_admit
from purchase.passes import purchase_pass_issue, spent_passes
from purchase.terms import sale_terms_forget
from purchase.waiting_room import waiting_room_join
from shop.models import FlashSale
from shop.selectors import flash_sale_states_forget
from shop.services import flash_sale_create, flash_sale_edit, flash_sale_preheat, flash_sale_reconcile
from tests.concurrency import paused_after, start_thread, wait_until_blocked_or_done
from tests.factories import StaffFactory, StockFactory
from tests.sale_engine import lose_shard, shopper_of

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("SALE_ENGINE_EXAMPLES", "12"))
STEPS = int(os.environ.get("SALE_ENGINE_STEPS", "25"))
SHOPPERS = 6
# Reasons the database may refuse a reservation Redis accepted without Redis having offered what
# the database lacked: Redis lost it (restarted empty), or the sale closed while it was on its way.
HONEST_FAILURES = {FailedReservation.Reason.LOST, FailedReservation.Reason.SALE_CLOSED}


class Tally:
    """What the runs did, for the figure the test prints."""

    examples = 0
    steps = 0


class SaleEngine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        redis_client().flushdb()
        sale_gate.clear()
        spent_passes.clear()
        flash_sale_states_forget()
        sale_terms_forget()
        Tally.examples += 1
        self.staff = StaffFactory(is_superuser=True)
        self.answers: dict[tuple[int, str], str] = {}  # (shopper, key) -> accepted reservation id
        self.keys: dict[int, list[tuple[str, int]]] = {}  # shopper -> [(key, quantity)]
        self.passes: dict[int, str] = {}
        self.tickets: dict[int, str] = {}
        self.elsewhere = SaleGate()  # another web process's: news reach it through Redis only
        # The model's own record of the clock (preconditions read no outside state: a rerun of
        # the same steps must draw the same rules).
        self.shifted = self.ended = False

    # --- The sale ------------------------------------------------------------------------------

    @initialize(
        quantity=st.integers(2, 9),
        limit=st.integers(1, 3),
        shards=st.sampled_from([1, 1, 2, 3]),
        in_waves=st.booleans(),
        requires_pass=st.booleans(),
        waiting_room=st.booleans(),
    )
    def a_sale(self, quantity, limit, shards, in_waves, requires_pass, waiting_room):
        now = timezone.now()
        starts_at = now - timedelta(seconds=60)
        stock = stock_receive(stock=StockFactory(low_stock_threshold=0), quantity=quantity * 3, actor=None, reason="in")
        first = quantity // 2 or 1
        waves = [(starts_at, first), (starts_at + timedelta(minutes=30), quantity - first)] if in_waves else []
        self.sale = flash_sale_create(
            sku=stock.sku,
            price=Decimal("9.99"),
            quantity=quantity,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=2),
            per_user_limit=limit,
            actor=self.staff,
            stock_shards=shards,
            waves=waves,
            requires_pass=requires_pass,
            waiting_room_opens_at=starts_at - timedelta(minutes=5) if waiting_room else None,
            let_through_per_second=1000,
        )
        assert flash_sale_preheat(sale=self.sale) is not None
        # Shopper i is at home in shard i % shards, whatever ids the database hands out: a rerun
        # of the same steps (Hypothesis shrinking) must do the same thing.
        self.shoppers = [shopper_of(i % shards, shards) for i in range(SHOPPERS)]
        for shopper in self.shoppers:
            if requires_pass:
                self.passes[shopper.pk] = purchase_pass_issue(sale=self.sale, user_id=shopper.pk).token
            if waiting_room:
                self.tickets[shopper.pk] = waiting_room_join(sale_id=self.sale.pk, user_id=shopper.pk).ticket

    def current(self) -> FlashSale:
        return FlashSale.objects.get(pk=self.sale.pk)

    # --- Shoppers ------------------------------------------------------------------------------

    def buy(self, shopper: int, replay: bool, quantity: int) -> str | None:
        user = self.shoppers[shopper]
        earlier = self.keys.setdefault(user.pk, [])
        if replay and earlier:
            key, quantity = earlier[-1]
        else:
            key = f"attempt-{len(earlier)}"
            earlier.append((key, quantity))
        try:
            rid = purchase_admit(
                sale_id=self.sale.pk,
                user_id=user.pk,
                quantity=quantity,
                idempotency_key=key,
                purchase_pass=self.passes.get(user.pk),
                queue_ticket=self.tickets.get(user.pk),
            )
        except DomainError as error:
            # A repeat of an accepted purchase gets its first answer, unless the sale layer is
            # briefly away or the shop's rate of attempts says wait: neither is an answer.
            assert (user.pk, key) not in self.answers or error.code in {"unavailable", "rate_limited"}, (
                f"replay of accepted {self.answers.get((user.pk, key))} answered {error.code}"
            )
            return None
        first = self.answers.setdefault((user.pk, key), rid)
        assert rid == first, f"a replay got {rid}, its first answer was {first}"
        return rid

    @rule(shopper=st.integers(0, SHOPPERS - 1), replay=st.booleans(), quantity=st.integers(1, 2))
    def purchase(self, shopper, replay, quantity):
        self.buy(shopper, replay, quantity)

    @rule(shopper=st.integers(0, SHOPPERS - 1), replay=st.booleans(), quantity=st.integers(1, 2))
    def purchase_through_the_database(self, shopper, replay, quantity):
        with override_settings(PURCHASE_ADMISSION="database"):
            self.buy(shopper, replay, quantity)

    @rule(shopper=st.integers(0, SHOPPERS - 1), replay=st.booleans(), quantity=st.integers(1, 2))
    def purchase_through_another_process(self, shopper, replay, quantity):
        with gate_of(self.elsewhere):
            self.buy(shopper, replay, quantity)

    def order(self, index: int, status: str = Order.Status.PENDING_PAYMENT) -> Order | None:
        orders = list(Order.objects.filter(flash_sale=self.sale, status=status).order_by("pk"))
        return orders[index % len(orders)] if orders else None

    @rule(index=st.integers(0, 20))
    def pay(self, index):
        order = self.order(index)
        if order is not None:
            order_pay(order=order, actor=order.user)

    @rule(index=st.integers(0, 20))
    def cancel(self, index):
        order = self.order(index)
        if order is not None:
            order_cancel(order=order, actor=order.user, reason="changed mind")

    @rule(index=st.integers(0, 20))
    def expire(self, index):
        order = self.order(index)
        if order is not None:
            Order.objects.filter(pk=order.pk).update(pay_by=timezone.now() - timedelta(seconds=1))
            orders_expire_unpaid()  # (and any order of an earlier sale whose time ran out meanwhile)
            assert Order.objects.get(pk=order.pk).status == Order.Status.CANCELLED

    # --- Staff and jobs ------------------------------------------------------------------------

    @rule(quantity=st.integers(-3, 3), limit=st.integers(-1, 1), extend=st.booleans())
    def edit(self, quantity, limit, extend):
        sale = self.current()
        change = {
            "quantity": sale.quantity + quantity if quantity else None,
            "per_user_limit": sale.per_user_limit + limit if limit else None,
            "ends_at": sale.ends_at + timedelta(minutes=10) if extend else None,
        }
        with contextlib.suppress(DomainError):  # Refused: it changes nothing (the invariants say so).
            flash_sale_edit(sale=sale, actor=self.staff, version=sale.version, **change)

    @rule(shard=st.integers(0, 2))
    def write(self, shard):
        if shard < self.sale.stock_shards:
            writer.order_writer_drain(
                sale_id=self.sale.pk, consumer="model", shard=shard, shards=self.sale.stock_shards
            )

    @rule(shard=st.integers(0, 2), units=st.integers(1, 2))
    def move(self, shard, units):
        # A sale with a shard Redis does not hold (lost, or the sale closed and forgotten) moves
        # nothing: its purchases rebuild it first.
        if shard < self.sale.stock_shards:
            with contextlib.suppress(redis_sales.SaleNotLoaded):
                redis_sales.sale_borrow(sale_id=self.sale.pk, shard=shard, shards=self.sale.stock_shards, units=units)

    @rule()
    def reconcile(self):
        flash_sale_reconcile(sale=self.current())

    @rule()
    def preheat(self):
        flash_sale_preheat(sale=self.current())

    @rule(shard=st.integers(-1, 2))
    def redis_loses(self, shard):
        """One shard (or, -1, the whole sale) is lost; the next purchase or preheat rebuilds it.
        A reservation lost with it that no writer had yet settled is lost for good (its result
        says so): a repeat of its request is a new request."""
        shards = self.sale.stock_shards
        lost = set(range(shards)) if shard < 0 or shards == 1 else {shard % shards}
        for lost_shard in lost:
            lose_shard(self.sale.pk, lost_shard, shards)
        settled = set(Order.objects.filter(flash_sale=self.sale).values_list("reservation_id", flat=True))
        settled |= set(FailedReservation.objects.filter(flash_sale=self.sale).values_list("reservation_id", flat=True))
        for (user_id, key), rid in list(self.answers.items()):
            if redis_sales.home_shard(user_id, shards) in lost and rid not in settled:
                del self.answers[user_id, key]

    @precondition(lambda self: not self.shifted)
    @rule()
    def time_passes(self):
        """Half an hour and more passes: the sale (and its waves) moves an hour earlier."""
        self.shifted = True
        hour = timedelta(hours=1)
        sale = self.current()
        waves = [{"at": (wave.at - hour).isoformat(), "units": wave.units} for wave in sale.wave_list]
        FlashSale.objects.filter(pk=sale.pk).update(
            starts_at=F("starts_at") - hour,
            ends_at=F("ends_at") - hour,
            waiting_room_opens_at=F("waiting_room_opens_at") - hour,
            waves=waves,
        )
        flash_sale_states_forget()
        sale_terms_forget()
        flash_sale_preheat(sale=self.current())

    @precondition(lambda self: not self.ended)
    @rule()
    def the_sale_ends(self):
        self.ended = True
        sale = self.current()
        FlashSale.objects.filter(pk=sale.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
        tasks.flash_sale_end(self.current())

    # --- A step paused midway, another meanwhile --------------------------------------------------

    def meanwhile(self, step: str, shopper: int) -> None:
        {
            "purchase": lambda: self.buy(shopper, False, 1),
            "purchase through the database": lambda: self.purchase_through_the_database(shopper, False, 1),
            "purchase through another process": lambda: self.purchase_through_another_process(shopper, False, 1),
            "cancel": lambda: self.cancel(shopper),
            "edit": lambda: self.edit(1, 1, True),
            "write": lambda: self.write(shopper % self.sale.stock_shards),
            "reconcile": self.reconcile,
            "preheat": self.preheat,
            "lose a shard and rebuild it": lambda: (self.redis_loses(shopper), self.preheat()),
        }[step]()

    COMPETITORS = [
        "purchase", "purchase through the database", "purchase through another process", "cancel", "edit",
        "write", "reconcile", "preheat", "lose a shard and rebuild it",
    ]  # fmt: skip

    def interleave(self, first, pause, step: str, shopper: int) -> None:
        with pause as (reached, release):
            paused, paused_outcome = start_thread(first)
            while not reached.wait(0.01) and paused.is_alive():
                pass
            if not reached.is_set():  # Nothing to do: it ran through without reaching its pause.
                paused.join(30)
                return
            competitor, competitor_outcome = start_thread(lambda: self.meanwhile(step, shopper))
            wait_until_blocked_or_done(competitor)
            release.set()
            paused.join(30)
            competitor.join(30)
        assert not paused.is_alive() and not competitor.is_alive(), "a step never finished"
        for outcome in paused_outcome + competitor_outcome:
            if isinstance(outcome, Exception):
                raise outcome

    @rule(shard=st.integers(0, 2), step=st.sampled_from(COMPETITORS), shopper=st.integers(0, SHOPPERS - 1))
    def a_batch_paused_after_it_decided(self, shard, step, shopper):
        shards = self.sale.stock_shards
        self.interleave(
            lambda: writer.order_writer_drain(
                sale_id=self.sale.pk, consumer="paused", shard=shard % shards, shards=shards
            ),
            paused_after(writer, "reservations_decide"),
            step,
            shopper,
        )

    @rule(shard=st.integers(0, 2), step=st.sampled_from(COMPETITORS), shopper=st.integers(0, SHOPPERS - 1))
    def a_move_paused_between_its_take_and_its_give(self, shard, step, shopper):
        shards = self.sale.stock_shards
        if shards == 1:
            return
        self.interleave(
            lambda: redis_sales.sale_borrow(sale_id=self.sale.pk, shard=shard % shards, shards=shards, units=1),
            paused_after(redis_sales.moves, "sale_shift_units", when=lambda arguments, _: arguments["units"] < 0),
            step,
            shopper,
        )

    # --- What must hold --------------------------------------------------------------------------

    @invariant()
    def the_invariants_hold(self):
        if not hasattr(self, "sale"):
            return
        Tally.steps += 1
        report = check_invariants(sale_ids=[self.sale.pk])
        assert report.ok, report.violations
        refused = FailedReservation.objects.filter(flash_sale=self.sale).exclude(reason__in=HONEST_FAILURES)
        assert not refused.exists(), (
            f"Redis accepted what the database refused: {list(refused.values_list('reason', 'quantity'))}"
        )

    def teardown(self):
        self.elsewhere.clear()
        if not hasattr(self, "sale"):
            return
        shards = self.sale.stock_shards
        for shard in range(shards):
            writer.order_writer_drain(sale_id=self.sale.pk, consumer="model", shard=shard, shards=shards)
        accepted = set(self.answers.values())
        settled = set(Order.objects.filter(reservation_id__in=accepted).values_list("reservation_id", flat=True))
        settled |= set(
            FailedReservation.objects.filter(reservation_id__in=accepted).values_list("reservation_id", flat=True)
        )
        in_flight = {
            entry.reservation_id
            for shard in range(shards)
            for entry in redis_sales.reservations_in_stream(self.sale.pk, shard, shards)
        }
        # Lost with Redis, never asked after: its result would be recorded "lost" when asked.
        pending = set().union(*(redis_sales.reservations_pending(self.sale.pk, s, shards) for s in range(shards)))
        unaccounted = accepted - settled - in_flight
        assert not unaccounted & pending, f"accepted reservations neither written nor failed: {unaccounted & pending}"


@contextlib.contextmanager
def gate_of(gate: SaleGate):
    """Purchases go through this sale gate, as another web process's would."""
    here, admission.sale_gate = admission.sale_gate, gate
    try:
        yield
    finally:
        admission.sale_gate = here


def test_the_sale_engine_keeps_its_promises(capsys):
    seed = int(os.environ.get("SALE_ENGINE_SEED") or random.randrange(2**32))
    with capsys.disabled():
        print(f"\nsale engine model: seed {seed} (SALE_ENGINE_SEED={seed} repeats this run)")
    celery_app.conf.task_always_eager = False  # Writers write when a step says so.
    Tally.examples = Tally.steps = 0
    try:
        hypothesis.stateful.run_state_machine_as_test(
            hypothesis.seed(seed)(lambda: SaleEngine()),
            settings=hypothesis.settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                suppress_health_check=list(hypothesis.HealthCheck),
            ),
        )
    finally:
        celery_app.conf.task_always_eager = True
        with capsys.disabled():
            print(f"sale engine model: {Tally.examples} sales, {Tally.steps} steps checked (seed {seed})")
