"""A flash sale's definition and life: created with its stock allocated, checked (waves, the
waiting room), opened, edited, closed or cancelled. Redis never offers what the database has
not granted: an edit narrows Redis before its commit and widens it after.
"""

import itertools
import logging
import secrets
from datetime import datetime
from decimal import Decimal

import redis
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from inventory import redis_sales
from inventory.redis_sales.gate import sale_gate_reopen
from inventory.services import stock_allocate, stock_get_or_create, stock_release
from shop.exceptions import (
    InvalidSaleChange,
    InvalidSaleWindow,
    InvalidWaitingRoom,
    InvalidWaves,
    SaleBusy,
    SaleNotCancellable,
    SaleVersionConflict,
)
from shop.models import SKU, FlashSale, FlashSaleEdit
from shop.services.redis_sync import flash_sale_preheat
from shop.services.shards import flash_sale_shards_create, shards_locked, shards_resize

logger = logging.getLogger(__name__)


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
    `requires_pass` admits only purchases carrying a purchase pass (purchase/passes.py), issued
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
        if locked.status not in FlashSale.OPEN_STATUSES:
            return False
        if if_over_by is not None and locked.ends_at > if_over_by:
            redis_sales.sale_set_status(sale.pk, locked.status, locked.stock_shards)
            transaction.on_commit(lambda: sale_gate_reopen(sale.pk))
            return False
        shards_locked(sale.pk)  # Batches being written finish first; later ones see the sale closed.
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
        if locked.status not in FlashSale.OPEN_STATUSES:
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
        rows = shards_locked(locked.pk)
        stock = locked.sku.stock
        if delta > 0:
            stock_allocate(
                stock=stock, quantity=delta, actor=actor, reason="Flash sale raised", reference=f"sale:{locked.pk}"
            )
        if delta:
            shards_resize(locked, rows, delta)
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
    if per_user_limit < 1 or per_user_limit < max(sale.orders.units_by_user().values(), default=0):
        raise InvalidSaleChange("A shopper already holds more than that limit.")


def flash_sale_cancel(*, sale: FlashSale, actor: AbstractBaseUser | None) -> FlashSale:
    """Staff cancel a sale that is scheduled or live. Raises SaleNotCancellable otherwise."""
    if not flash_sale_close(sale=sale, to=FlashSale.Status.CANCELLED, actor=actor):
        raise SaleNotCancellable()
    return sale
