"""The waiting room: early arrivals are drawn in a random order at the start, later ones follow in
the order they came, each place is let through at the sale's rate, and the purchase checks the
ticket's turn before the admission script."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from core.redis import redis_client
from orders.invariants import check_invariants
from orders.models import Order, WaitingRoomDraw
from orders.waiting_room import draw_order, waiting_room_draw_holds, waiting_rooms_record
from purchase.waiting_room import waiting_room_join
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def spearman(xs: list[int], ys: list[int]) -> float:
    """Spearman's rank correlation of two rankings without ties."""
    n = len(xs)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(xs, ys, strict=True)) / (n * (n * n - 1))


def wait_until(moment) -> None:
    while redis_now() < moment.timestamp():
        time.sleep(0.02)


def redis_now() -> float:
    seconds, micros = redis_client().time()
    return seconds + micros / 1e6


def waiting_sale(make_sale, *, starts_in: float, rate: int = 100, quantity: int = 10, limit: int = 1):
    return make_sale(
        quantity=quantity,
        limit=limit,
        starts_in=starts_in,
        waiting_room_opens_at=timezone.now() - timedelta(seconds=1),
        let_through_per_second=rate,
    )


def join(client, sale):
    response = client.post(f"/api/v1/flash-sales/{sale.pk}/queue/")
    assert response.status_code == 200, response.content
    return response.json()


def buy(client, sale, ticket: str | None, key: str):
    headers = {"HTTP_IDEMPOTENCY_KEY": key}
    if ticket is not None:
        headers["HTTP_QUEUE_TICKET"] = ticket
    return client.post(f"/api/v1/flash-sales/{sale.pk}/purchase/", {"quantity": 1}, format="json", **headers)


def test_early_arrivals_are_let_through_in_an_order_uncorrelated_with_their_arrival(make_sale):
    crowd = 10_000  # |rho| < 0.05 is five standard deviations of rho for 10,000 shoppers
    sale = waiting_sale(make_sale, starts_in=12)
    for user_id in range(1, crowd + 1):  # in the order they arrive over the minute before the start
        assert waiting_room_join(sale_id=sale.pk, user_id=user_id).position is None
    wait_until(sale.starts_at)

    places = [waiting_room_join(sale_id=sale.pk, user_id=user_id).position for user_id in range(1, crowd + 1)]

    assert sorted(places) == list(range(1, crowd + 1))
    rho = spearman(list(range(1, crowd + 1)), places)
    assert abs(rho) < 0.05, rho
    # Later arrivals queue behind the drawn ones, in the order they came, and keep their place.
    late = [waiting_room_join(sale_id=sale.pk, user_id=user_id).position for user_id in range(crowd + 1, crowd + 51)]
    assert late == list(range(crowd + 1, crowd + 51))
    assert waiting_room_join(sale_id=sale.pk, user_id=crowd + 7).position == crowd + 7
    assert waiting_room_join(sale_id=sale.pk, user_id=5).position == places[4]

    # The draw is recorded once the sale started, and an auditor recomputes it from the seed.
    time.sleep(2.1)
    assert waiting_rooms_record() == 1
    draw = WaitingRoomDraw.objects.get(flash_sale=sale)
    assert draw.entrants == list(range(1, crowd + 1))
    assert draw.order == sorted(range(1, crowd + 1), key=lambda user_id: places[user_id - 1])
    assert draw.order == draw_order(sale.waiting_room_seed, draw.entrants)
    assert waiting_room_draw_holds(draw)
    draw.order[0], draw.order[1] = draw.order[1], draw.order[0]
    assert not waiting_room_draw_holds(draw)
    assert waiting_rooms_record() == 0  # once


def test_each_place_is_let_through_at_the_rate_and_not_before_its_turn(make_sale, admissions):
    rate = 2
    sale = waiting_sale(make_sale, starts_in=4, rate=rate)
    clients = [client_for(UserFactory()) for _ in range(6)]
    tickets = [join(client, sale)["ticket"] for client in clients]
    wait_until(sale.starts_at)

    places = {}
    for i, client in enumerate(clients):
        response = join(client, sale)  # the place, now that the early arrivals are drawn
        places[i] = (response["position"], response["ticket"])
    assert sorted(position for position, _ in places.values()) == [1, 2, 3, 4, 5, 6]
    admitted_at = {}
    while len(admitted_at) < len(clients):
        for i, client in enumerate(clients):
            if i in admitted_at:
                continue
            position, ticket = places[i]
            # Half of them still show the ticket they had before the start: its place is looked up.
            response = buy(client, sale, ticket if i % 2 else tickets[i], key=f"k{i}-{time.monotonic()}")
            if response.status_code == 202:
                admitted_at[i] = time.time()
            else:
                body = response.json()
                assert (response.status_code, body["code"], body["position"]) == (409, "not_your_turn", position)
                assert 0 <= body["estimated_wait_seconds"] <= (position - 1) / rate + 1
        time.sleep(0.1)

    start = sale.starts_at.timestamp()
    for i, at in admitted_at.items():
        position = places[i][0]
        assert at >= start + (position - 1) / rate  # never before its turn
    assert len(admissions) == len(clients)  # the refusals never reached the admission script
    assert Order.objects.filter(flash_sale=sale).count() == 6
    assert check_invariants().ok


def test_a_shopper_who_leaves_and_comes_back_keeps_their_ticket_and_place(make_sale):
    sale = waiting_sale(make_sale, starts_in=3)
    shopper = client_for(UserFactory())
    first = join(shopper, sale)
    others = [join(client_for(UserFactory()), sale) for _ in range(5)]

    assert (first["position"], first["estimated_wait_seconds"] >= 1) == (None, True)
    assert join(shopper, sale) == {**first, "estimated_wait_seconds": join(shopper, sale)["estimated_wait_seconds"]}
    wait_until(sale.starts_at)
    placed = join(shopper, sale)
    assert placed["position"] in range(1, 7)
    assert join(shopper, sale)["ticket"] == placed["ticket"]
    assert {other["ticket"] for other in others}.isdisjoint({first["ticket"], placed["ticket"]})


def test_a_purchase_without_a_good_ticket_waits_and_the_queue_says_when_it_opens(make_sale, user_client):
    sale = waiting_sale(make_sale, starts_in=-1)
    other_sale = make_sale(quantity=5)
    ticket = join(user_client, sale)["ticket"]

    for bad in (None, "", "garbage", ticket[:-1] + ("0" if ticket[-1] != "0" else "1"), "1" * 100):
        response = buy(user_client, sale, bad, key="k")
        assert (response.status_code, response.json()["code"], response.json()["position"]) == (
            409,
            "not_your_turn",
            None,
        )
    stranger = client_for(UserFactory())
    assert buy(stranger, sale, ticket, key="k").json()["code"] == "not_your_turn"  # not theirs
    assert buy(user_client, sale, ticket, key="k").status_code == 202

    assert user_client.post(f"/api/v1/flash-sales/{other_sale.pk}/queue/").json()["code"] == "no_waiting_room"
    assert user_client.post("/api/v1/flash-sales/999999/queue/").status_code == 404
    later = make_sale(quantity=5, starts_in=600, waiting_room_opens_at=timezone.now() + timedelta(minutes=5))
    response = user_client.post(f"/api/v1/flash-sales/{later.pk}/queue/")
    assert (response.status_code, response.json()["code"]) == (409, "too_early")
    assert response.json()["opens_at"] == later.waiting_room_opens_at.isoformat().replace("+00:00", "Z")


def test_a_waiting_room_opens_before_the_start_and_lets_at_most_what_the_shop_serves(staff_client, staff):
    from inventory.services import stock_receive
    from tests.factories import StockFactory

    stock = stock_receive(stock=StockFactory(), quantity=10, actor=staff, reason="opening")
    starts_at = timezone.now() + timedelta(hours=1)
    sale = {
        "sku": stock.sku.code, "price": "5.00", "quantity": 5, "per_user_limit": 1,
        "starts_at": starts_at.isoformat(), "ends_at": (starts_at + timedelta(hours=1)).isoformat(),
    }  # fmt: skip
    late_room = {**sale, "waiting_room_opens_at": starts_at.isoformat()}
    too_fast = {**sale, "waiting_room_opens_at": timezone.now().isoformat(), "let_through_per_second": 10**6}

    assert staff_client.post("/api/v1/flash-sales/", late_room, format="json").status_code == 400
    assert staff_client.post("/api/v1/flash-sales/", too_fast, format="json").status_code == 400
    created = staff_client.post(
        "/api/v1/flash-sales/", {**sale, "waiting_room_opens_at": timezone.now().isoformat()}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["let_through_per_second"] == 100
    assert created.json()["waiting_room_opens_at"] is not None
