import itertools
import logging
import secrets
from datetime import datetime, timedelta
from decimal import Decimal

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import staff_emails_with
from inventory import redis_sales
from inventory.services import stock_allocate, stock_get_or_create, stock_release
from orders.selectors import order_units_by_user, reservation_units_by_id, reservations_settled
from shop.exceptions import (
    InvalidSaleChange,
    InvalidSaleWindow,
    InvalidWaitingRoom,
    InvalidWaves,
    SaleBusy,
    SaleNotCancellable,
    SaleVersionConflict,
)
from shop.gate import sale_gate_reopen
from shop.models import SKU, FlashSale, FlashSaleEdit, FlashSaleShard, SaleDrift, Wave

logger = logging.getLogger(__name__)

OPEN_STATUSES = FlashSale.OPEN_STATUSES


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
    stock_shards: int = 1,
    waves: list[tuple[datetime, int]] = (),
    requires_pass: bool = False,
    pass_challenge: bool = False,
    waiting_room_opens_at: datetime | None = None,
    let_through_per_second: int = 100,
) -> FlashSale:
    """Create a sale, its stock shards, and allocate its quantity from the SKU's stock, in one
    transaction. `waves` release the units in stages (see `flash_sale_waves_check`); a sale that
    `requires_pass` admits only purchases carrying a purchase pass (orders/passes.py), issued
    against a proof of work with `pass_challenge` (which implies it); with
    `waiting_room_opens_at`, shoppers wait in line and are let through `let_through_per_second`
    (orders/waiting_room.py), in an order drawn with a secret seed made here.

    Raises InsufficientStock when the SKU has fewer available units than `quantity`,
    InvalidSaleWindow when the window is empty or already over, InvalidWaves, InvalidWaitingRoom.
    """
    now = timezone.now()
    if ends_at <= starts_at or ends_at <= now:
        raise InvalidSaleWindow()
    flash_sale_waves_check(waves=waves, starts_at=starts_at, ends_at=ends_at, quantity=quantity)
    flash_sale_waiting_room_check(
        waiting_room_opens_at=waiting_room_opens_at, starts_at=starts_at, let_through_per_second=let_through_per_second
    )
    with transaction.atomic():
        sale = FlashSale.objects.create(
            title=title,
            sku=sku,
            price=price,
            quantity=quantity,
            starts_at=starts_at,
            ends_at=ends_at,
            per_user_limit=per_user_limit,
            stock_shards=stock_shards,
            waves=[{"at": at.isoformat(), "units": units} for at, units in waves],
            requires_pass=requires_pass or pass_challenge,
            pass_challenge=pass_challenge,
            waiting_room_opens_at=waiting_room_opens_at,
            let_through_per_second=let_through_per_second,
            waiting_room_seed=secrets.token_hex(32) if waiting_room_opens_at else "",
            status=flash_sale_status_at(starts_at=starts_at, ends_at=ends_at, now=now),
            created_by=actor,
        )
        flash_sale_shards_create(sale=sale)
        stock_allocate(
            stock=stock_get_or_create(sku=sku),
            quantity=quantity,
            actor=actor,
            reason="Flash sale created",
            reference=f"sale:{sale.pk}",
        )
    return sale


MAX_WAVES = 50
# The terms of a new sale that its waves are checked against (the admin's form and the API
# hand them over as one dict: `flash_sale_waves_check(**{term: data[term] for term in WAVE_TERMS})`).
WAVE_TERMS = ("waves", "starts_at", "ends_at", "quantity")


WAITING_ROOM_TERMS = ("waiting_room_opens_at", "starts_at", "let_through_per_second")


def flash_sale_waiting_room_check(
    *, waiting_room_opens_at: datetime | None, starts_at: datetime, let_through_per_second: int
) -> None:
    """A waiting room opens before the start and lets through between one shopper a second and
    what the shop serves (WAITING_ROOM_MAX_LET_THROUGH). Raises InvalidWaitingRoom."""
    most = settings.WAITING_ROOM_MAX_LET_THROUGH
    if not 1 <= let_through_per_second <= most:
        raise InvalidWaitingRoom(f"Let between 1 and {most} shoppers through a second.")
    if waiting_room_opens_at is not None and waiting_room_opens_at >= starts_at:
        raise InvalidWaitingRoom("The waiting room must open before the sale starts.")


def flash_sale_waves_check(
    *, waves: list[tuple[datetime, int]], starts_at: datetime, ends_at: datetime, quantity: int
) -> None:
    """Waves are (time, units) in strictly increasing time, each inside the window, each of a
    positive number of units, together the quantity. Raises InvalidWaves saying which rule."""
    if not waves:
        return
    if len(waves) > MAX_WAVES:
        raise InvalidWaves(f"At most {MAX_WAVES} waves.")
    times = [at for at, _ in waves]
    if any(later <= earlier for earlier, later in itertools.pairwise(times)):
        raise InvalidWaves("Each wave must come after the one before it.")
    if times[0] < starts_at or times[-1] >= ends_at:
        raise InvalidWaves("Every wave must open inside the sale's window: at or after its start, before its end.")
    if any(units < 1 for _, units in waves):
        raise InvalidWaves("Every wave must release at least one unit.")
    if sum(units for _, units in waves) != quantity:
        raise InvalidWaves(f"The waves must release the sale's quantity ({quantity}) in all.")


def _even_shares(units: int, shards: int) -> list[int]:
    return [units // shards + (index < units % shards) for index in range(shards)]


def flash_sale_shard_waves(*, sale: FlashSale, shard: int) -> list[Wave]:
    """The waves of one stock shard: of the units released by each wave's time, the shard's even
    share (as its allotment is the even share of the quantity), so that the shards' waves add up
    to the sale's at every moment, and a shard never holds back more than it was allotted. A
    wave that gives a shard nothing stays in its list: each shard knows when the next one opens."""
    released, shares = 0, [0]
    for wave in sale.wave_list:
        released += wave.units
        shares.append(_even_shares(released, sale.stock_shards)[shard])
    return [Wave(wave.at, shares[i + 1] - shares[i]) for i, wave in enumerate(sale.wave_list)]


def flash_sale_shards_create(*, sale: FlashSale) -> None:
    """The sale's stock shards in the database, its quantity split evenly between them."""
    FlashSaleShard.objects.bulk_create(
        FlashSaleShard(flash_sale=sale, index=index, allotment=allotment)
        for index, allotment in enumerate(_even_shares(sale.quantity, sale.stock_shards))
    )


def _shards_locked(sale_id: int) -> list[FlashSaleShard]:
    """The sale's shard rows, locked in index order (so two lockers never deadlock)."""
    return list(FlashSaleShard.objects.select_for_update().filter(flash_sale_id=sale_id).order_by("index"))


def flash_sale_shards_rebalance(*, sale_id: int, shard: int, units: int) -> int:
    """Give a shard whose writer finds its allotment spent at least `units` more. The database
    takes Redis's allotments, which decided the admissions, when they share out the quantity and
    cover what each shard sold; otherwise (a move half done, Redis away) `units` come from the
    shards with the most unsold. In a transaction of its own, taken before any other lock, with
    every shard row locked in order: a writer holds only its own shard's row, so this never
    deadlocks with one. Returns the units `shard` gained: fewer than asked when the sale has no
    more unsold, which only a Redis that admitted more than the sale has can cause."""
    with transaction.atomic():
        rows = _shards_locked(sale_id)
        wanting = rows[shard]
        followed = _allotments_from_redis(sale_id, rows)
        if followed and followed[shard] >= wanting.allotment + units:
            gained = followed[shard] - wanting.allotment
            for row, allotment in zip(rows, followed, strict=True):
                row.allotment = allotment
            FlashSaleShard.objects.bulk_update(rows, ["allotment"])
            return gained
        moved = 0
        for donor in sorted((row for row in rows if row.index != shard), key=lambda row: -row.room):
            give = min(donor.room, units - moved)
            if give <= 0:
                break
            donor.allotment -= give
            donor.save(update_fields=["allotment"])
            moved += give
        if moved:
            wanting.allotment += moved
            wanting.save(update_fields=["allotment"])
    return moved


def _allotments_from_redis(sale_id: int, rows: list[FlashSaleShard]) -> list[int] | None:
    """Redis's allotments of the shards, if the database can take them as they are."""
    try:
        states = redis_sales.sale_shard_states(sale_id, len(rows))
    except redis.RedisError:
        return None
    if not all(states):
        return None
    allotments = [state.allotment for state in states]
    fits = all(allotment >= row.units_sold for allotment, row in zip(allotments, rows, strict=True))
    return allotments if fits and sum(allotments) == sum(row.allotment for row in rows) else None


def _shards_resize(sale: FlashSale, rows: list[FlashSaleShard], delta: int) -> None:
    """A sale's quantity changes by `delta` (the caller holds its row and its shards' rows):
    shard 0 takes what is added; what is taken off comes from the shards with the most unsold."""
    if delta > 0:
        rows[0].allotment += delta
        rows[0].save(update_fields=["allotment"])
        return
    left = -delta
    for row in sorted(rows, key=lambda row: -row.room):
        take = min(row.room, left)
        row.allotment -= take
        row.save(update_fields=["allotment"])
        left -= take
    if left:
        raise InvalidSaleChange(f"{sale.units_sold} units are sold already; the quantity cannot go below that.")


def flash_sale_preheat(*, sale: FlashSale) -> int | None:
    """Load the sale into Redis from the database; safe to repeat. Returns Redis's remaining.

    A sale already loaded keeps its counters (reservations in flight live only there) and
    gets its terms refreshed; a sale Redis lost is rebuilt from the database, each stock shard
    on its own (a shard rebuilt beside loaded ones gets what they do not hold). The sale's row
    is locked meanwhile, so a cancel or an end cannot commit between the status read here and
    the status written to Redis (and the load script never reopens a closed sale). A closed
    sale is not loaded: 0. Returns None, doing nothing, while another process preheats it, or
    while a mover holds the sale's move lock past MOVE_LOCK_WAIT_MS.
    """
    with redis_sales.sale_lock(sale.pk, "preheat") as lock:
        if lock is None:
            return None
        with transaction.atomic():
            locked = FlashSale.objects.locked().get(pk=sale.pk)
            if locked.status not in OPEN_STATUSES:
                return 0
            terms = {
                "sale_id": locked.pk,
                "starts_at": locked.starts_at,
                "ends_at": locked.ends_at,
                "per_user_limit": locked.per_user_limit,
                "status": locked.status,
                "shards": locked.stock_shards,
                "version": locked.version,
            }
            waves = {shard: flash_sale_shard_waves(sale=locked, shard=shard) for shard in range(locked.stock_shards)}
            remaining = {
                shard: redis_sales.sale_load(**terms, shard=shard, counters=None, waves=waves[shard])
                for shard in range(locked.stock_shards)
            }
            missing = [shard for shard, left in remaining.items() if left is None]
            if missing:
                rebuilt = _shards_rebuild(locked, missing=missing, terms=terms, waves=waves)
                if rebuilt is None:
                    return None
                remaining.update(rebuilt)
    sale_gate_reopen(sale.pk)
    return sum(remaining.values())


def _shards_rebuild(
    sale: FlashSale, *, missing: list[int], terms: dict, waves: dict[int, list[Wave]]
) -> dict[int, int] | None:
    """Load the `missing` shards of a sale (whose row the caller has locked) from the database,
    under the sale's move lock, its token raised in every shard before they are read (so a mover
    that stalled past its lock moves nothing into what this counts), and with every shard row
    locked (so a writer's batch being committed is counted: its orders are read after it).
    Returns each shard's remaining, or None when the move lock could not be had."""
    with redis_sales.sale_move_lock(sale.pk, wait_ms=redis_sales.MOVE_LOCK_WAIT_MS) as moves:
        if moves is None:
            return None
        _shards_locked(sale.pk)
        states = redis_sales.sale_shard_states(sale.pk, sale.stock_shards, fence=moves.fence)
        now = redis_sales.redis_now()
        counters = _sale_counters(sale, missing=missing, states=states, fence=moves.fence, now=now, waves=waves)
        return {
            shard: redis_sales.sale_load(**terms, shard=shard, counters=counters[shard], waves=waves[shard])
            for shard in missing
        }


def _sale_counters(
    sale: FlashSale,
    *,
    missing: list[int],
    states: list[redis_sales.ShardState | None],
    fence: int,
    now: datetime,
    waves: dict[int, list[Wave]],
) -> dict[int, redis_sales.SaleCounters]:
    """Counters to load the `missing` shards of a sale with, from the database. Each gets what
    its shoppers bought, and of what the loaded shards do not hold, first the units its waves
    still hold back at `now` (Redis's clock), then an even share of the rest: so a rebuilt shard
    offers no unit before its wave."""
    shards = sale.stock_shards
    sold = dict.fromkeys(range(shards), 0)
    for user_id, units in order_units_by_user(flash_sale_id=sale.pk).items():
        sold[redis_sales.home_shard(user_id, shards)] += units
    held_elsewhere = sum(state.allotment for state in states if state is not None)
    unsold = max(sale.quantity - held_elsewhere - sum(sold[shard] for shard in missing), 0)
    held_back = {}
    for shard in missing:
        held_back[shard] = min(unsold, sum(wave.units for wave in waves[shard] if wave.at > now))
        unsold -= held_back[shard]
    blocked = list(User.objects.filter(is_active=False).values_list("pk", flat=True))
    counters = {}
    for shard, share in zip(missing, _even_shares(unsold, len(missing)), strict=True):
        left = held_back[shard] + share
        counters[shard] = redis_sales.SaleCounters(
            remaining=left,
            allotment=sold[shard] + left,
            held_by_user=order_units_by_user(flash_sale_id=sale.pk, shard=shard, shards=shards),
            admitted=reservation_units_by_id(flash_sale_id=sale.pk, shard=shard, shards=shards),
            blocked_users=[user for user in blocked if redis_sales.home_shard(user, shards) == shard],
            version=sale.version,
            fence=fence,
        )
    return counters


def _allotments_share(*, quantity: int, floors: list[int], current: list[int]) -> list[int]:
    """Allotments of a sale's shards that share out exactly its quantity, each at least its
    floor (what the shard has sold, has in flight and holds back for waves to come): each shard
    keeps the allotment it has where it can; what is short (units a mover lost on its way, or an
    edit added) goes to shard 0, what is over comes off the shards with the most to spare. When
    the floors alone exceed the quantity (Redis admitted more than the sale has), the excess
    stays, and shows."""
    allotments = [max(have, floor) for have, floor in zip(current, floors, strict=True)]
    extra = quantity - sum(allotments)
    if extra > 0:
        allotments[0] += extra
    while extra < 0:
        spare, index = max((allotments[i] - floors[i], i) for i in range(len(allotments)))
        if spare <= 0:
            break
        take = min(spare, -extra)
        allotments[index] -= take
        extra += take
    return allotments


def flash_sales_block_account(*, user_id: int, blocked: bool) -> None:
    """Refuse an account's purchases in every sale on offer from its next attempt (or allow
    them again). Sales loaded later read the accounts themselves. If Redis is unreachable,
    the order writer still refuses a deactivated account's reservations."""
    sales = dict(FlashSale.objects.on_offer().values_list("pk", "stock_shards"))
    try:
        redis_sales.sales_block_user(sales=sales, user_id=user_id, blocked=blocked)
    except redis.RedisError:
        logger.warning("could not tell Redis that account %s is %s", user_id, "blocked" if blocked else "allowed")


def flash_sale_should_be_loaded(*, sale: FlashSale, now: datetime) -> bool:
    lead = timedelta(seconds=settings.FLASH_SALE_PREHEAT_LEAD)
    return sale.status in OPEN_STATUSES and sale.starts_at - lead <= now


def flash_sale_go_live(*, sale: FlashSale) -> bool:
    """scheduled -> live once its start has passed. Returns whether this call moved it."""
    moved = FlashSale.objects.filter(
        pk=sale.pk, status=FlashSale.Status.SCHEDULED, starts_at__lte=timezone.now()
    ).update(status=FlashSale.Status.LIVE, updated_at=timezone.now())
    return bool(moved)


def flash_sale_close(
    *,
    sale: FlashSale,
    to: FlashSale.Status,
    actor: AbstractBaseUser | None = None,
    if_over_by: datetime | None = None,
) -> bool:
    """End or cancel a sale: release its unsold units to stock and stop admissions.

    Only call once the writer has emptied the sale's stream (for `ended`); for `cancelled`,
    reservations still in flight fail when the writer reaches them. With `if_over_by` (the end
    job of the sale's clock), only if the sale's end, as committed now, is at or before it: an
    extension committed while the job ran keeps the sale open, and Redis, which the job closed
    first, gets the sale's status back. Returns whether this call closed it (False when it was
    closed already, or is not over).
    """
    with transaction.atomic():
        locked = FlashSale.objects.locked().get(pk=sale.pk)
        if locked.status not in OPEN_STATUSES:
            return False
        if if_over_by is not None and locked.ends_at > if_over_by:
            redis_sales.sale_set_status(sale.pk, locked.status, locked.stock_shards)
            transaction.on_commit(lambda: sale_gate_reopen(sale.pk))
            return False
        _shards_locked(sale.pk)  # Batches being written finish first; later ones see the sale closed.
        locked.status = to
        locked.save(update_fields=["status", "updated_at"])
        if locked.remaining:
            stock_release(
                stock=locked.sku.stock,
                quantity=locked.remaining,
                actor=actor,
                reason=f"Flash sale {to}: unsold units return to stock",
                reference=f"sale:{locked.pk}",
            )
    shards = locked.stock_shards
    if to == FlashSale.Status.ENDED:
        # The admission script's tallies go with the sale's keys; the report keeps their totals.
        FlashSale.objects.filter(pk=sale.pk).update(admissions=redis_sales.sale_outcome_totals(sale.pk, shards))
        redis_sales.sale_forget(sale.pk, shards)
    else:
        # Reservations may still be in flight: the writer fails them as "sale closed".
        redis_sales.sale_set_status(sale.pk, to, shards)
    sale.refresh_from_db()
    return True


def flash_sale_edit(
    *,
    sale: FlashSale,
    actor: AbstractBaseUser | None,
    version: int,
    ends_at: datetime | None = None,
    quantity: int | None = None,
    per_user_limit: int | None = None,
) -> FlashSale:
    """Change an open sale's end, quantity or per-user limit, if it is still at `version`.

    Under the sale's row lock (which the order writer and reconciliation take too). Redis never
    offers what the database has not granted: what narrows the offer (fewer units, an earlier
    end, a lower limit) reaches Redis before the commit, where the admission script can still
    refuse it (units sold or in flight, a shopper holding more); what widens it (more units,
    allocated from stock first, a later end, a higher limit) reaches Redis after the commit. So
    a failed commit, or Redis away just after it, leaves Redis offering less than the database
    until reconciliation repairs it, never more. Every process's sale gate reopens after commit.
    The edit is recorded with who made it. Raises SaleVersionConflict, InvalidSaleChange,
    InsufficientStock.
    """
    with transaction.atomic():
        locked = FlashSale.objects.locked().get(pk=sale.pk)
        if locked.version != version:
            raise SaleVersionConflict()
        if locked.status not in OPEN_STATUSES:
            raise InvalidSaleChange("Only a scheduled or live sale can be changed.")
        new_end = locked.ends_at if ends_at is None else ends_at
        new_quantity = locked.quantity if quantity is None else quantity
        new_limit = locked.per_user_limit if per_user_limit is None else per_user_limit
        changes = {
            field: [str(before), str(after)]
            for field, before, after in [
                ("ends_at", locked.ends_at.isoformat(), new_end.isoformat()),
                ("quantity", locked.quantity, new_quantity),
                ("per_user_limit", locked.per_user_limit, new_limit),
            ]
            if before != after
        }
        if not changes:
            return locked
        _check_edit(locked, ends_at=new_end, quantity=new_quantity, per_user_limit=new_limit)
        _redis_lost_shards_rebuild(locked)
        delta = new_quantity - locked.quantity
        # The writers' batches see the new terms: they lock their shard's row before reading them.
        rows = _shards_locked(locked.pk)
        stock = locked.sku.stock
        if delta > 0:
            stock_allocate(
                stock=stock, quantity=delta, actor=actor, reason="Flash sale raised", reference=f"sale:{locked.pk}"
            )
        if delta:
            _shards_resize(locked, rows, delta)
        _redis_narrow(
            locked,
            ends_at=min(locked.ends_at, new_end),
            per_user_limit=min(locked.per_user_limit, new_limit),
            delta=min(delta, 0),
        )
        if delta < 0:
            stock_release(
                stock=stock, quantity=-delta, actor=actor, reason="Flash sale lowered", reference=f"sale:{locked.pk}"
            )
        locked.ends_at, locked.quantity, locked.per_user_limit = new_end, new_quantity, new_limit
        locked.version += 1
        locked.save(update_fields=["ends_at", "quantity", "per_user_limit", "version", "updated_at"])
        FlashSaleEdit.objects.create(flash_sale=locked, actor=actor, changes=changes, version=locked.version)
        transaction.on_commit(lambda: _flash_sale_widen(locked, units=max(delta, 0)))
    return locked


EDIT_REFUSALS = {
    -1: "Fewer units are left on offer than that: the rest are sold or on their way.",
    -2: "A shopper already holds more than that limit.",
}


def _redis_lost_shards_rebuild(sale: FlashSale) -> None:
    """Before an edit: a shard Redis lost while it holds the others is rebuilt, so that the edit
    sees the sale whole (it takes units off through shard 0, and a rebuild later would leave
    what the others hold over the new quantity on offer). Raises SaleBusy when another process
    is loading the sale right now."""
    states = redis_sales.sale_shard_states(sale.pk, sale.stock_shards)
    if any(states) and not all(states) and flash_sale_preheat(sale=sale) is None:
        raise SaleBusy()


def _redis_narrow(sale: FlashSale, *, ends_at: datetime, per_user_limit: int, delta: int) -> None:
    """Before an edit's commit: its narrower terms and the units it takes off (`delta` <= 0, from
    shard 0, as units come and go) reach every shard of the sale in Redis, or none. Every shard
    is checked first; a shard that then refuses (an admission came in between) has the shards
    already narrowed restored. Raises InvalidSaleChange with the refusal."""
    shards = sale.stock_shards
    edit = {"sale_id": sale.pk, "shards": shards, "ends_at": ends_at, "per_user_limit": per_user_limit}
    for step in ("check", "narrow"):
        for shard in range(shards):
            applied = redis_sales.sale_edit(
                **edit, step=step, delta=delta if shard == 0 else 0, version=sale.version + 1, shard=shard
            )
            if applied in EDIT_REFUSALS:
                if step == "narrow":
                    for narrowed in range(shard):
                        redis_sales.sale_edit(
                            **{**edit, "ends_at": sale.ends_at, "per_user_limit": sale.per_user_limit},
                            step="restore",
                            delta=-delta if narrowed == 0 else 0,
                            version=sale.version,
                            shard=narrowed,
                        )
                raise InvalidSaleChange(EDIT_REFUSALS[applied])


def _flash_sale_widen(sale: FlashSale, *, units: int) -> None:
    """After an edit's commit: its wider terms (and `units` more) reach Redis, and every process's
    gate reopens: each shard takes the terms unless it has newer ones, and the units once for the
    edit's version (edit_sale.lua), whatever the order the edits' steps get there in. Redis away
    now is logged; reconciliation brings the terms and units later."""
    try:
        for shard in range(sale.stock_shards):
            redis_sales.sale_edit(
                sale_id=sale.pk,
                step="widen",
                ends_at=sale.ends_at,
                per_user_limit=sale.per_user_limit,
                delta=units if shard == 0 else 0,
                version=sale.version,
                shard=shard,
                shards=sale.stock_shards,
            )
    except redis.RedisError:
        logger.warning("flash sale %s: the edit's wider terms wait for reconciliation (Redis away)", sale.pk)
    sale_gate_reopen(sale.pk)


def _check_edit(sale: FlashSale, *, ends_at: datetime, quantity: int, per_user_limit: int) -> None:
    """What the database alone can refuse; Redis checks what is in flight (edit_sale.lua)."""
    if ends_at <= timezone.now() or ends_at <= sale.starts_at:
        raise InvalidSaleChange("The end must be in the future and after the start.")
    if quantity < 1 or quantity < sale.units_sold:
        raise InvalidSaleChange(f"{sale.units_sold} units are sold already; the quantity cannot go below that.")
    if sale.waves and quantity != sale.quantity:
        raise InvalidSaleChange("A sale released in waves keeps its quantity: its waves add up to it.")
    if sale.waves and ends_at <= sale.wave_list[-1][0]:
        raise InvalidSaleChange("The end must come after the sale's last wave.")
    if per_user_limit < 1 or per_user_limit < max(order_units_by_user(flash_sale_id=sale.pk).values(), default=0):
        raise InvalidSaleChange("A shopper already holds more than that limit.")


def flash_sale_cancel(*, sale: FlashSale, actor: AbstractBaseUser | None) -> FlashSale:
    """Staff cancel a sale that is scheduled or live. Raises SaleNotCancellable otherwise."""
    if not flash_sale_close(sale=sale, to=FlashSale.Status.CANCELLED, actor=actor):
        raise SaleNotCancellable()
    return sale


def flash_sale_reconcile(*, sale: FlashSale) -> redis_sales.Reconciliation | None:
    """Compare the sale's Redis counters with the database and repair them toward it.

    Holds the sale's row lock and its shards' meanwhile, so no writer commits in between, and
    the fenced lock under which Redis moves units between shards, its token raised in every
    shard before it reads them, so none moves and no stalled mover moves afterwards; each
    shard's comparison runs as one Lua script, so no admission interleaves. Each shard keeps the
    units Redis allotted it where it can (`_allotments_share`): units a mover lost on its way or
    an edit added go to shard 0, units over the quantity come off the shards with the most to
    spare, and no shard is left with fewer than it has sold, has in flight and holds back for
    its waves (by Redis's clock), so the shards together offer what the database has and no
    wave opens early. Rebuilds the sale if Redis lost it. Returns what it found, or None if it
    had to rebuild or skip.
    """
    shards = sale.stock_shards
    with redis_sales.sale_lock(sale.pk, "reconcile") as lock:
        if lock is None:
            return None
        if not redis_sales.sale_is_loaded(sale.pk, shards):
            logger.error("flash sale %s was missing from Redis; rebuilt from the database", sale.pk)
            flash_sale_preheat(sale=sale)
            return None
        with transaction.atomic():
            locked = FlashSale.objects.locked().get(pk=sale.pk)
            with redis_sales.sale_move_lock(sale.pk, wait_ms=redis_sales.MOVE_LOCK_WAIT_MS) as moves:
                if moves is None:
                    return None
                rows = _shards_locked(sale.pk)
                states = redis_sales.sale_shard_states(sale.pk, shards, fence=moves.fence)
                if not all(states):  # A shard lost since the look above: the next preheat rebuilds it.
                    return None
                streams = [redis_sales.reservations_in_stream(sale.pk, row.index, shards) for row in rows]
                inactive = list(User.objects.filter(is_active=False).values_list("pk", flat=True))
                settled = [reservations_settled(reservation_ids=[e.reservation_id for e in s]) for s in streams]
                if locked.status in OPEN_STATUSES:
                    floors = [
                        row.units_sold + redis_sales.units_in_flight(stream, done) + state.held_back
                        for row, stream, done, state in zip(rows, streams, settled, states, strict=True)
                    ]
                    current = [state.allotment for state in states]
                    allotments = _allotments_share(quantity=locked.quantity, floors=floors, current=current)
                else:  # A closed sale offers nothing: each shard's allotment is what it sold.
                    allotments = [row.units_sold for row in rows]
                with redis_sales.sale_units_in_transit(sale.pk, moves):
                    parts = [
                        redis_sales.sale_reconcile_counters(
                            sale_id=sale.pk,
                            quantity=allotments[row.index],
                            units_sold=row.units_sold,
                            held_by_user=order_units_by_user(flash_sale_id=sale.pk, shard=row.index, shards=shards),
                            settled=settled[row.index],
                            ends_at=locked.ends_at,
                            per_user_limit=locked.per_user_limit,
                            version=locked.version,
                            blocked_users=[
                                user for user in inactive if redis_sales.home_shard(user, shards) == row.index
                            ],
                            shard=row.index,
                            shards=shards,
                        )
                        for row in rows
                    ]
            result = redis_sales.Reconciliation.of_shards(parts)
    if result.drifted:
        sale_gate_reopen(sale.pk)
        logger.error(
            "flash sale %s drifted: Redis remaining %s, expected %s (%s in flight), %s buyers repaired, terms %s",
            sale.pk,
            result.remaining_before,
            result.remaining_expected,
            result.in_flight,
            result.buyers_repaired,
            "repaired" if result.terms_repaired else "agreed",
        )
        SaleDrift.objects.create(
            flash_sale=sale,
            remaining_before=result.remaining_before,
            remaining_expected=result.remaining_expected,
            in_flight=result.in_flight,
            buyers_repaired=result.buyers_repaired,
            terms_repaired=result.terms_repaired,
        )
    return result


def flash_sale_drifts_notify() -> int:
    """E-mail the sales staff about each drift reconciliation found, once: a drift is claimed
    (`notified_at`) by exactly one caller, and given back if the mail could not be sent.
    Returns how many drifts this call reported."""
    recipients = staff_emails_with("shop.view_flashsale")
    if not recipients:
        return 0
    reported = 0
    for drift in SaleDrift.objects.filter(notified_at__isnull=True).select_related("flash_sale").order_by("pk"):
        if not SaleDrift.objects.filter(pk=drift.pk, notified_at__isnull=True).update(notified_at=timezone.now()):
            continue  # Another run took it.
        try:
            send_mail(
                subject=f"Drift repaired in flash sale #{drift.flash_sale_id}",
                message=(
                    f"Reconciliation found Redis disagreeing with the database for {drift.flash_sale} and "
                    f"repaired it.\n\nRedis said {drift.remaining_before} left; the database says "
                    f"{drift.remaining_expected} ({drift.in_flight} in flight); {drift.buyers_repaired} shoppers' "
                    f"tallies repaired{'; its end and limit set again' if drift.terms_repaired else ''}.\n"
                    f"Found at {drift.found_at:%Y-%m-%d %H:%M:%S %Z}.\n"
                ),
                from_email=None,
                recipient_list=recipients,
            )
        except OSError:
            SaleDrift.objects.filter(pk=drift.pk).update(notified_at=None)
            raise
        reported += 1
    return reported
