"""Editing a sale through its service: the end, the quantity, the per-user limit, with its version,
Redis following at once and every invariant kept, reservations in flight included."""

from datetime import timedelta
from unittest.mock import patch

import pytest
import redis
from django.db import OperationalError
from django.utils import timezone

from core.redis import redis_client
from inventory import redis_sales
from inventory.models import Stock
from orders.invariants import check_invariants
from orders.writer import order_writer_drain
from shop.models import FlashSale, FlashSaleEdit
from shop.services import flash_sale_edit, flash_sale_preheat, flash_sale_reconcile
from shop.services import sales as shop_services
from tests.conftest import client_for, purchase
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def edit(client, sale: FlashSale, **fields):
    body = {"version": FlashSale.objects.get(pk=sale.pk).version, **fields}
    return client.patch(f"/api/v1/flash-sales/{sale.pk}/", body, format="json")


def meta(sale: FlashSale) -> dict:
    return {k.decode(): v.decode() for k, v in redis_client().hgetall(f"fs:{{{sale.pk}}}:meta").items()}


def invariants_hold():
    report = check_invariants()
    assert report.ok, report.violations


def test_extending_the_end_reaches_redis_bumps_the_version_and_is_recorded(make_sale, staff):
    sale = make_sale(quantity=5)
    later = sale.ends_at + timedelta(hours=2)

    response = edit(client_for(staff), sale, ends_at=later.isoformat())

    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2
    assert int(meta(sale)["ends_at"]) == int(later.timestamp() * 1_000_000)
    record = FlashSaleEdit.objects.get(flash_sale=sale)
    assert (record.actor, record.version, list(record.changes)) == (staff, 2, ["ends_at"])
    invariants_hold()


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"ends_at": "2001-01-01T00:00:00Z"}, "invalid_change"),
        ({"quantity": 1000}, "insufficient_stock"),
        ({"version": 7, "per_user_limit": 3}, "version_conflict"),
    ],
)
def test_a_refused_edit_changes_nothing(make_sale, staff, fields, code):
    sale = make_sale(quantity=5)
    before = (FlashSale.objects.get(pk=sale.pk).version, meta(sale), Stock.objects.get(sku=sale.sku).allocated)

    response = edit(client_for(staff), sale, **fields)

    assert (response.status_code, response.json()["code"]) == (409, code)
    after = (FlashSale.objects.get(pk=sale.pk).version, meta(sale), Stock.objects.get(sku=sale.sku).allocated)
    assert after == before and not FlashSaleEdit.objects.exists()
    invariants_hold()


def test_raising_the_quantity_allocates_stock_and_reopens_a_sold_out_sale_everywhere(make_sale, staff):
    sale = make_sale(quantity=1, limit=1)
    assert purchase(client_for(UserFactory()), sale, key="a").status_code == 202
    late = client_for(UserFactory())
    assert purchase(late, sale, key="b").json()["code"] == "sold_out"  # the gate is closed now
    allocated = Stock.objects.get(sku=sale.sku).allocated

    assert edit(client_for(staff), sale, quantity=2).status_code == 200  # the SKU's last free unit

    assert Stock.objects.get(sku=sale.sku).allocated == allocated + 1
    assert redis_sales.sale_remaining(sale.pk) == 1
    assert purchase(late, sale, key="c").status_code == 202
    invariants_hold()


def test_lowering_the_quantity_never_takes_units_in_flight(make_sale, staff, brokered):
    sale = make_sale(quantity=5, limit=1)
    for i in range(3):  # admitted, not yet written: in flight
        assert purchase(client_for(UserFactory()), sale, key=f"k{i}").status_code == 202
    on_hand_allocated = Stock.objects.get(sku=sale.sku).allocated

    too_far = edit(client_for(staff), sale, quantity=2)
    assert (too_far.status_code, too_far.json()["code"]) == (409, "invalid_change")
    assert edit(client_for(staff), sale, quantity=3).status_code == 200

    assert redis_sales.sale_remaining(sale.pk) == 0
    assert Stock.objects.get(sku=sale.sku).allocated == on_hand_allocated - 2
    invariants_hold()  # counts the 3 in flight
    order_writer_drain(sale_id=sale.pk, consumer="test")
    sale.refresh_from_db()
    assert (sale.quantity, sale.units_sold) == (3, 3)
    invariants_hold()


def test_the_limit_cannot_go_below_what_a_shopper_holds_and_raising_it_lets_them_buy_more(make_sale, staff):
    sale = make_sale(quantity=10, limit=2)
    shopper = client_for(UserFactory())
    assert [purchase(shopper, sale, key=k).status_code for k in ("a", "b", "c")] == [202, 202, 409]

    lower = edit(client_for(staff), sale, per_user_limit=1)
    assert (lower.status_code, lower.json()["code"]) == (409, "invalid_change")
    assert edit(client_for(staff), sale, per_user_limit=3).status_code == 200

    assert purchase(shopper, sale, key="d").status_code == 202
    invariants_hold()


def test_a_closed_sale_cannot_be_edited_and_only_sales_staff_may_edit(make_sale, staff):
    sale = make_sale(quantity=5)
    assert edit(client_for(StaffFactory()), sale, per_user_limit=2).status_code == 403
    assert edit(client_for(UserFactory()), sale, per_user_limit=2).status_code == 403
    FlashSale.objects.filter(pk=sale.pk).update(status=FlashSale.Status.CANCELLED)

    response = edit(client_for(staff), sale, ends_at=(timezone.now() + timedelta(days=1)).isoformat())

    assert (response.status_code, response.json()["code"]) == (409, "invalid_change")


def test_in_the_admin_an_edit_names_the_version_the_form_was_drawn_at(client, make_sale, staff):
    sale = make_sale(quantity=5, limit=1)
    client.force_login(staff)
    url = f"/admin/shop/flashsale/{sale.pk}/change/"
    page = client.get(url).content.decode()
    assert 'name="expected_version"' in page and 'name="per_user_limit"' in page and 'name="price"' not in page

    def form(**changes):
        ends = timezone.localtime(sale.ends_at)
        return {"title": "Drop", "ends_at_0": ends.strftime("%Y-%m-%d"), "ends_at_1": ends.strftime("%H:%M:%S"),
                "quantity": 5, "per_user_limit": 1, "expected_version": 1, "edits-TOTAL_FORMS": 0,
                "edits-INITIAL_FORMS": 0, **changes}  # fmt: skip

    assert client.post(url, form(per_user_limit=2)).status_code == 302
    sale.refresh_from_db()
    assert (sale.per_user_limit, sale.version, sale.title) == (2, 2, "Drop")
    assert meta(sale)["limit"] == "2"
    assert "per_user_limit" in client.get(url).content.decode()  # the edit is listed on the sale's page

    stale = client.post(url, form(per_user_limit=3, title="Stale"), follow=True)
    assert "The sale changed since you read it" in stale.content.decode()
    sale.refresh_from_db()
    assert (sale.per_user_limit, sale.version, sale.title) == (2, 2, "Drop")
    invariants_hold()


@pytest.mark.parametrize(
    "change", [{"quantity": 8}, {"ends_at": "later"}, {"per_user_limit": 3}, {"quantity": 3, "per_user_limit": 3}]
)
def test_an_edit_whose_commit_fails_leaves_redis_offering_no_more_than_the_database(make_sale, staff, change):
    sale = make_sale(quantity=5, limit=1)
    if change.get("ends_at"):
        change = {"ends_at": sale.ends_at + timedelta(hours=1)}
    terms = (redis_sales.sale_remaining(sale.pk), meta(sale)["ends_at"], meta(sale)["limit"])

    def commit_fails(*args, **kwargs):
        raise OperationalError("the connection dropped at commit")

    with patch.object(FlashSaleEdit.objects, "create", commit_fails), pytest.raises(OperationalError):
        flash_sale_edit(sale=sale, actor=staff, version=sale.version, **change)

    remaining, ends_at, limit = redis_sales.sale_remaining(sale.pk), meta(sale)["ends_at"], meta(sale)["limit"]
    assert remaining <= terms[0] and int(ends_at) <= int(terms[1]) and int(limit) <= int(terms[2])
    # Whatever the failed edit took off Redis, reconciliation gives back from the database.
    flash_sale_reconcile(sale=FlashSale.objects.get(pk=sale.pk))
    assert (redis_sales.sale_remaining(sale.pk), meta(sale)["ends_at"], meta(sale)["limit"]) == terms
    invariants_hold()


def test_a_widening_that_cannot_reach_redis_after_commit_is_repaired_by_reconcile(make_sale, staff, monkeypatch):
    sale = make_sale(quantity=5, limit=1)
    later = sale.ends_at + timedelta(hours=1)
    narrowing_only = redis_sales.sale_edit
    calls = []

    def redis_away_after_commit(**kwargs):
        calls.append(kwargs["step"])
        if kwargs["step"] == "widen":
            raise redis.ConnectionError("Redis went away")
        return narrowing_only(**kwargs)

    monkeypatch.setattr(redis_sales, "sale_edit", redis_away_after_commit)
    edited = flash_sale_edit(sale=sale, actor=staff, version=sale.version, quantity=7, ends_at=later, per_user_limit=2)

    assert edited.version == 2 and calls == ["check", "narrow", "widen"]
    assert redis_sales.sale_remaining(sale.pk) == 5  # the database granted 7; Redis did not hear of it
    monkeypatch.undo()
    flash_sale_reconcile(sale=FlashSale.objects.get(pk=sale.pk))
    assert redis_sales.sale_remaining(sale.pk) == 7
    assert (int(meta(sale)["ends_at"]), meta(sale)["limit"]) == (int(later.timestamp() * 1_000_000), "2")
    invariants_hold()


@pytest.mark.parametrize("between", ["reconcile", "a rebuild of the sale in Redis"])
def test_more_units_reach_redis_once_even_if_a_repair_runs_between_the_commit_and_them(
    make_sale, staff, monkeypatch, between
):
    sale = make_sale(quantity=5, limit=1)
    widen = shop_services._flash_sale_widen

    def repair_first(edited, *, units):
        if between == "reconcile":
            flash_sale_reconcile(sale=FlashSale.objects.get(pk=edited.pk))
        else:
            redis_client().delete(redis_sales.SaleKeys(edited.pk).remaining)
            flash_sale_preheat(sale=FlashSale.objects.get(pk=edited.pk))
        widen(edited, units=units)

    monkeypatch.setattr(shop_services, "_flash_sale_widen", repair_first)
    flash_sale_edit(sale=sale, actor=staff, version=sale.version, quantity=8)

    assert redis_sales.sale_remaining(sale.pk) == 8  # the database's 8, not 8 and the 3 again
    assert not flash_sale_reconcile(sale=FlashSale.objects.get(pk=sale.pk)).drifted
    invariants_hold()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"quantity": 6}, "keeps its quantity"),
        ({"ends_at": "in a minute"}, "after the sale's last wave"),
    ],
)
def test_a_sale_in_waves_keeps_its_quantity_and_ends_after_its_last_wave(make_sale, staff, fields, message):
    now = timezone.now()
    sale = make_sale(quantity=5, waves=[(now - timedelta(seconds=30), 2), (now + timedelta(minutes=5), 3)])
    if fields.get("ends_at") == "in a minute":
        fields["ends_at"] = (now + timedelta(minutes=1)).isoformat()
    before = (FlashSale.objects.get(pk=sale.pk).version, meta(sale), Stock.objects.get(sku=sale.sku).allocated)

    response = edit(client_for(staff), sale, **fields)

    assert (response.status_code, response.json()["code"]) == (409, "invalid_change")
    assert message in response.json()["detail"]
    after = (FlashSale.objects.get(pk=sale.pk).version, meta(sale), Stock.objects.get(sku=sale.sku).allocated)
    assert after == before and not FlashSaleEdit.objects.exists()
    invariants_hold()
