from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.services import stock_receive
from orders.models import Order
from orders.services import order_pay, order_refund
from orders.writer import order_writer_drain
from shop.models import FlashSale
from shop.services import flash_sale_close
from tests.conftest import client_for, purchase
from tests.factories import StaffFactory, StockFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


def add_sale(client, staff, title: str, starts_at=None, **fields):
    """Post the admin's add form of a sale of 12 units an hour from now (unless `starts_at`), two
    hours long; `fields` add to the form (dates as datetimes) or replace its values."""
    stock = stock_receive(stock=StockFactory(), quantity=30, actor=staff, reason="opening")
    starts_at = starts_at or timezone.localtime(timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    form = {
        "title": title, "sku": stock.sku.pk, "price": "5.00", "quantity": 12, "per_user_limit": 1,
        "stock_shards": 1, "starts_at": starts_at, "ends_at": starts_at + timedelta(hours=2), **fields,
    }  # fmt: skip
    for name, value in list(form.items()):
        if isinstance(value, datetime):
            form |= {f"{name}_0": f"{value:%Y-%m-%d}", f"{name}_1": f"{value:%H:%M:%S}"}
            del form[name]
    return client.post(reverse("admin:shop_flashsale_add"), form)


def added(response, error: str | None) -> FlashSale | None:
    """The sale the add form made; or, when the form was to say `error`, None once it said it
    and made nothing."""
    if error:
        assert response.status_code == 200
        assert error in response.content.decode()
        assert not FlashSale.objects.exists()
        return None
    assert response.status_code == 302, response.context["adminform"].form.errors
    return FlashSale.objects.get()


def test_a_sale_added_in_the_admin_allocates_its_units(admin_client, staff, redis_client):
    from inventory.services import stock_receive

    stock = stock_receive(stock=StockFactory(), quantity=30, actor=staff, reason="opening")
    now = timezone.now()
    response = admin_client.post(
        reverse("admin:shop_flashsale_add"),
        {
            "title": "Evening drop",
            "sku": stock.sku.pk,
            "price": "5.00",
            "quantity": 12,
            "starts_at_0": (now + timedelta(hours=1)).strftime("%Y-%m-%d"),
            "starts_at_1": (now + timedelta(hours=1)).strftime("%H:%M:%S"),
            "ends_at_0": (now + timedelta(hours=3)).strftime("%Y-%m-%d"),
            "ends_at_1": (now + timedelta(hours=3)).strftime("%H:%M:%S"),
            "per_user_limit": 1,
            "stock_shards": 3,
        },
    )

    assert response.status_code == 302, response.content
    sale = FlashSale.objects.get()
    assert [(shard.index, shard.allotment, shard.units_sold) for shard in sale.shards.all()] == [
        (0, 4, 0),
        (1, 4, 0),
        (2, 4, 0),
    ]
    stock.refresh_from_db()
    assert stock.allocated == 12
    assert stock.movements.filter(kind="allocate", reference=f"sale:{sale.pk}").exists()
    detail = admin_client.get(reverse("admin:shop_flashsale_change", args=[sale.pk]))
    assert b"left in Redis" in detail.content


def test_cancel_action_confirms_then_cancels(admin_client, make_sale):
    sale = make_sale(quantity=4)
    url = reverse("admin:shop_flashsale_changelist")
    action = {"action": "cancel", "_selected_action": [sale.pk]}

    assert b"Cancel these sales?" in admin_client.post(url, action).content
    sale.refresh_from_db()
    assert sale.status == FlashSale.Status.LIVE

    admin_client.post(url, {**action, "confirmed": "yes"})
    sale.refresh_from_db()
    assert sale.status == FlashSale.Status.CANCELLED


def test_order_cancel_action_releases_the_unit(admin_client, make_sale, brokered):
    sale = make_sale(quantity=2)
    purchase(client_for(UserFactory()), sale, key="k")
    order_writer_drain(sale_id=sale.pk, consumer="test")
    order = Order.objects.get()
    url = reverse("admin:orders_order_changelist")

    admin_client.post(url, {"action": "cancel", "_selected_action": [order.pk], "confirmed": "yes"})

    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    sale.refresh_from_db()
    assert sale.units_sold == 0
    assert admin_client.get(reverse("admin:orders_order_add")).status_code == 403


def test_the_sale_page_charts_admissions_by_outcome(admin_client, make_sale, brokered):
    sale = make_sale(quantity=1)
    purchase(client_for(UserFactory()), sale, key="k")
    purchase(client_for(UserFactory()), sale, key="k")

    page = admin_client.get(reverse("admin:shop_flashsale_change", args=[sale.pk])).content.decode()

    assert "<svg" in page
    assert "<title>Accepted: 1</title>" in page
    assert "<title>Sold out: 1</title>" in page
    assert "Writer lag:" in page


def test_the_admin_index_shows_todays_sales_orders_and_revenue(client, make_sale, staff):
    sale = make_sale(quantity=5, limit=1)
    for key in ("a", "b", "c"):
        purchase(client_for(UserFactory()), sale, key=key)
    order_writer_drain(sale_id=sale.pk, consumer="test")
    first, second = Order.objects.order_by("pk")[:2]
    order_pay(order=first, actor=None)
    order_pay(order=second, actor=None)
    order_refund(order=second, actor=staff, reason="broken")
    client.force_login(staff)

    page = client.get("/admin/").content.decode()

    dashboard = page[page.index('id="dashboard"') :]
    assert str(sale) in dashboard
    assert ">1</a>" in dashboard  # one order still awaiting payment
    assert f"{first.total} (paid since midnight, less refunds)" in dashboard


def test_a_sales_report_adds_up_and_its_page_refreshes_from_a_cheap_endpoint(client, make_sale, staff):
    sale = make_sale(quantity=2, limit=1)
    for key in ("a", "b", "c"):  # two accepted, one sold out
        purchase(client_for(UserFactory()), sale, key=key)
    order_writer_drain(sale_id=sale.pk, consumer="test")
    first, second = Order.objects.order_by("pk")
    order_pay(order=first, actor=None)
    order_pay(order=second, actor=None)
    order_refund(order=second, actor=staff, reason="broken")
    client.force_login(staff)

    page = client.get(f"/admin/shop/flashsale/{sale.pk}/change/").content.decode()
    live = client.get(f"/admin/shop/flashsale/{sale.pk}/live/").json()

    assert "admin_live_sale.js" in page
    assert set(live) == {"live_numbers", "activity", "report"}
    report = live["report"]
    expected = {"Units offered": "2", "Units sold": "2", "Units paid": "1", "Units refunded": "1",
                "Revenue": str(first.total), "Attempts": "3", "Attempts that ended paid": "33.3%"}  # fmt: skip
    for label, value in expected.items():
        assert f'<th scope="row">{label}</th>\n    <td>{value}</td>' in report, label
    assert "Accepted 2, Sold out 1" in report
    assert "Sold out after" in report and "<td>-</td>" not in report.split("Sold out after")[1].split("</tr>")[0]

    flash_sale_close(sale=sale, to=FlashSale.Status.ENDED)
    sale.refresh_from_db()
    assert sale.admissions == {"accepted": 2, "sold_out": 1}  # kept when Redis forgot the sale
    assert "Accepted 2, Sold out 1" in client.get(f"/admin/shop/flashsale/{sale.pk}/live/").json()["report"]


@pytest.mark.parametrize(
    ("waves", "error"),
    [
        ("{first}, 5\n{second}, 7", None),
        ("{first}, 5\n{second}, 6", "must release the sale&#x27;s quantity (12)"),
        ("{first}; 5", "Line 1: write a time, a comma, and the units"),
        ("{second}, 5\n{first}, 7", "Each wave must come after the one before it"),
    ],
)
def test_a_sale_added_in_the_admin_may_release_its_units_in_waves(admin_client, staff, waves, error):
    starts_at = timezone.localtime(timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    moments = {"first": starts_at, "second": starts_at + timedelta(minutes=10)}
    lines = waves.format(**{name: f"{at:%Y-%m-%d %H:%M:%S}" for name, at in moments.items()})
    response = add_sale(admin_client, staff, "Drop in waves", starts_at, waves=lines)

    sale = added(response, error)
    if error:
        return
    assert [(wave.at, wave.units) for wave in sale.wave_list] == [(moments["first"], 5), (moments["second"], 7)]


@pytest.mark.parametrize(("requires_pass", "pass_challenge", "error"), [
    ("on", "on", None),
    ("on", "", None),
    ("", "on", "A proof-of-work challenge is asked for a purchase pass: require one too."),
])  # fmt: skip
def test_a_sale_added_in_the_admin_may_require_a_purchase_pass(
    admin_client, staff, requires_pass, pass_challenge, error
):
    response = add_sale(admin_client, staff, "Guarded drop", requires_pass=requires_pass, pass_challenge=pass_challenge)

    sale = added(response, error)
    if error:
        return
    assert (sale.requires_pass, sale.pass_challenge) == (True, bool(pass_challenge))
    listed = admin_client.get(reverse("admin:shop_flashsale_changelist"), {"requires_pass__exact": "1"})
    assert "Guarded drop" in listed.content.decode()


def test_a_sale_with_a_waiting_room_shows_its_seed_only_once_it_started(admin_client, staff, make_sale):
    from orders.waiting_room import waiting_rooms_record
    from purchase.waiting_room import waiting_room_join

    starts_at = timezone.localtime(timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    opens_at = starts_at - timedelta(minutes=10)
    late = add_sale(admin_client, staff, "Queued drop", starts_at, waiting_room_opens_at=starts_at)
    assert "The waiting room must open before the sale starts." in late.content.decode()
    response = add_sale(
        admin_client, staff, "Queued drop", starts_at, waiting_room_opens_at=opens_at, let_through_per_second=50
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    sale = FlashSale.objects.get()
    assert (sale.waiting_room_opens_at, sale.let_through_per_second, len(sale.waiting_room_seed)) == (opens_at, 50, 64)
    page = admin_client.get(reverse("admin:shop_flashsale_change", args=[sale.pk])).content.decode()
    assert "SHA-256 of the seed" in page and sale.waiting_room_seed not in page

    started = make_sale(quantity=5, starts_in=-3, waiting_room_opens_at=timezone.now() - timedelta(minutes=1))
    waiting_room_join(sale_id=started.pk, user_id=staff.pk)
    assert waiting_rooms_record() == 1
    page = admin_client.get(reverse("admin:shop_flashsale_change", args=[started.pk])).content.decode()
    assert started.waiting_room_seed in page and "The record of the draw" in page
    draws = admin_client.get(reverse("admin:orders_waitingroomdraw_changelist")).content.decode()
    assert str(started) in draws and 'alt="True"' in draws
