"""Two web server processes and two Celery workers against one PostgreSQL and one Redis."""

import json
import threading

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from orders.invariants import check_invariants
from orders.models import Order
from tests.concurrency import run_together
from tests.processes import http, running_web_server, running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_web_servers_and_two_workers_sell_exactly_the_quantity(make_sale, brokered, tmp_path):
    # Given a sale of 120 units and 300 shoppers, behind two web servers and two writers
    sale = make_sale(quantity=120, limit=1)
    users = User.objects.bulk_create([User(username=f"scale{i}", password="!") for i in range(300)])
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    with (
        running_web_server(tmp_path, "web-a") as web_a,
        running_web_server(tmp_path, "web-b") as web_b,
        running_worker(tmp_path, "writer-a"),
        running_worker(tmp_path, "writer-b", beat=True),
    ):
        # When every shopper tries twice, alternating servers, 30 at a time
        def shopper(index: int) -> None:
            for user in users[index::30]:
                for attempt, web in enumerate((web_a, web_b)):
                    headers = {"Authorization": f"Bearer {AccessToken.for_user(user)}",
                               "Idempotency-Key": f"try-{attempt}", "Content-Type": "application/json"}  # fmt: skip
                    status, _, body = http("POST", f"{web}/api/v1/flash-sales/{sale.pk}/purchase/", headers,
                                           b'{"quantity": 1}')  # fmt: skip
                    with lock:
                        answers.append((status, json.loads(body)))

        run_together(shopper, 30, timeout=300)
        accepted = [body["reservation_id"] for status, body in answers if status == 202]
        wait_for(lambda: Order.objects.filter(reservation_id__in=accepted).count() == len(accepted), timeout=120,
                 what="both writers to write every accepted purchase")  # fmt: skip

    # Then exactly the quantity was sold, once per shopper, and every invariant holds
    assert len(answers) == 600
    assert {status for status, _ in answers} == {202, 409}
    assert len(accepted) == 120
    assert Order.objects.filter(flash_sale=sale).values("user").distinct().count() == 120
    report = check_invariants()
    assert report.ok, report.violations
