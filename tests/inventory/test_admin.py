import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from inventory.models import Stock, StockAlert, StockMovement
from inventory.services import stock_issue, stock_receive
from tests.factories import StaffFactory, StockFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user():
    return StaffFactory(username="boss", is_superuser=True)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def stock(admin_user) -> Stock:
    stock = StockFactory(sku__code="MUG-1", low_stock_threshold=2)
    return stock_receive(stock=stock, quantity=10, actor=admin_user, reason="opening")


def move_url(stock: Stock, action: str) -> str:
    return reverse(f"admin:inventory_stock_{action}", args=[stock.pk])


def test_receive_asks_for_confirmation_then_moves_stock(admin_client, stock, admin_user):
    url = move_url(stock, "receive")

    # The form
    assert admin_client.get(url).status_code == 200

    # Continue: a confirmation page, nothing changed yet
    form = {"quantity": 5, "reason": "delivery", "expected_version": stock.version}
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert b"Please confirm" in response.content
    stock.refresh_from_db()
    assert stock.on_hand == 10

    # Confirm: the service runs, the ledger and the admin history record who did it
    response = admin_client.post(url, {**form, "confirmed": "yes"})
    assert response.status_code == 302
    stock.refresh_from_db()
    assert stock.on_hand == 15
    movement = stock.movements.first()
    assert (movement.kind, movement.quantity, movement.actor) == ("in", 5, admin_user)
    assert LogEntry.objects.filter(object_id=str(stock.pk), user=admin_user).exists()

    # Submitting the same confirmation again (a double click) is refused as stale
    response = admin_client.post(url, {**form, "confirmed": "yes"})
    assert response.status_code == 200
    assert b"changed since you read it" in response.content
    stock.refresh_from_db()
    assert stock.on_hand == 15


def test_issue_more_than_available_shows_the_error_on_the_form(admin_client, stock):
    response = admin_client.post(
        move_url(stock, "issue"),
        {"quantity": 50, "reason": "lost", "expected_version": stock.version, "confirmed": "yes"},
    )

    assert response.status_code == 200
    assert b"cannot stock out 50" in response.content
    stock.refresh_from_db()
    assert stock.on_hand == 10


def test_invalid_move_form_shows_field_errors_and_changes_nothing(admin_client, stock):
    response = admin_client.post(
        move_url(stock, "receive"),
        {"quantity": -3, "reason": "", "expected_version": stock.version, "confirmed": "yes"},
    )

    assert response.status_code == 200
    assert response.context["form"].errors.keys() == {"quantity", "reason"}
    assert stock.movements.count() == 1


def test_adjust_from_a_stale_form_reports_the_conflict(admin_client, stock, admin_user):
    read_version = stock.version
    stock_issue(stock=stock, quantity=1, actor=admin_user, reason="meanwhile")

    response = admin_client.post(
        move_url(stock, "adjust"),
        {"on_hand": 3, "reason": "count", "expected_version": read_version, "confirmed": "yes"},
    )

    assert response.status_code == 200
    assert b"changed since you read it" in response.content
    stock.refresh_from_db()
    assert stock.on_hand == 9


def test_threshold_edit_from_a_stale_form_is_refused_with_a_message(admin_client, stock, admin_user):
    url = reverse("admin:inventory_stock_change", args=[stock.pk])
    read_version = stock.version
    page = admin_client.get(url).content.decode()
    assert f'name="expected_version" value="{read_version}"' in page
    stock_issue(stock=stock, quantity=1, actor=admin_user, reason="meanwhile")

    response = admin_client.post(url, {"low_stock_threshold": 7, "expected_version": read_version}, follow=True)

    assert any("Not saved" in str(message) for message in response.context["messages"])
    stock.refresh_from_db()
    assert stock.low_stock_threshold == 2

    admin_client.post(url, {"low_stock_threshold": 7, "expected_version": stock.version})
    stock.refresh_from_db()
    assert stock.low_stock_threshold == 7


def test_stock_list_has_filters_search_and_the_low_filter(admin_client, stock, admin_user):
    stock_receive(stock=StockFactory(sku__code="PLENTY-1", low_stock_threshold=0), quantity=5, actor=admin_user,
                  reason="x")  # fmt: skip
    stock_issue(stock=stock, quantity=9, actor=admin_user, reason="x")
    url = reverse("admin:inventory_stock_changelist")

    low = admin_client.get(url, {"low": "yes"})
    found = admin_client.get(url, {"q": "PLENTY"})

    assert [s.sku.code for s in low.context["cl"].result_list] == ["MUG-1"]
    assert [s.sku.code for s in found.context["cl"].result_list] == ["PLENTY-1"]


def test_ledger_admin_refuses_add_change_and_delete_even_for_superusers(admin_client, stock):
    movement = stock.movements.get()
    base = "admin:inventory_stockmovement"

    assert admin_client.get(reverse(f"{base}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"{base}_add")).status_code == 403
    assert admin_client.post(reverse(f"{base}_change", args=[movement.pk]), {"quantity": 99}).status_code == 403
    assert admin_client.post(reverse(f"{base}_delete", args=[movement.pk]), {"post": "yes"}).status_code == 403
    movement.refresh_from_db()
    assert movement.quantity == 10


def test_ledger_exports_the_filtered_rows_as_csv(admin_client, stock, admin_user):
    stock_issue(stock=stock, quantity=2, actor=admin_user, reason="damaged")

    response = admin_client.get(reverse("admin:inventory_stockmovement_csv"), {"kind__exact": "out"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert lines[0].startswith("id,created_at,sku,kind")
    assert len(lines) == 2
    assert ",MUG-1,out,2," in lines[1]


def test_acknowledge_action_confirms_first(admin_client, stock, admin_user):
    stock_issue(stock=stock, quantity=9, actor=admin_user, reason="x")
    alert = StockAlert.objects.get()
    url = reverse("admin:inventory_stockalert_changelist")
    action = {"action": "acknowledge", "_selected_action": [alert.pk]}

    confirmation = admin_client.post(url, action)
    assert b'value="Yes, I' in confirmation.content
    alert.refresh_from_db()
    assert alert.acknowledged_at is None

    admin_client.post(url, {**action, "confirmed": "yes"})
    alert.refresh_from_db()
    assert alert.acknowledged_by == admin_user


def test_admin_index_shows_the_open_alert_count(admin_client, stock, admin_user):
    stock_issue(stock=stock, quantity=9, actor=admin_user, reason="x")

    response = admin_client.get(reverse("admin:index"))

    assert b"1 open low-stock alert" in response.content


def test_non_staff_are_refused(client, stock):
    client.force_login(UserFactory())

    for url in (reverse("admin:inventory_stock_changelist"), move_url(stock, "receive"),
                reverse("admin:inventory_stockmovement_csv")):  # fmt: skip
        response = client.get(url)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
    assert StockMovement.objects.count() == 1


def test_a_sku_added_in_the_product_form_gets_an_empty_stock_row(admin_client):
    response = admin_client.post(
        reverse("admin:shop_product_add"),
        {
            "name": "Lamp",
            "slug": "lamp",
            "description": "",
            "is_active": "on",
            "skus-TOTAL_FORMS": "1",
            "skus-INITIAL_FORMS": "0",
            "skus-0-code": "LAMP-1",
            "skus-0-attributes": "{}",
            "skus-0-price": "12.50",
        },
    )

    assert response.status_code == 302
    stock = Stock.objects.get(sku__code="LAMP-1")
    assert (stock.on_hand, stock.allocated, stock.movements.count()) == (0, 0, 0)
