"""Purchase passes: a sale that requires one admits only purchases carrying a pass signed for the
shopper and the sale; every other purchase is refused before the admission script runs."""

import time
from datetime import timedelta

import altcha
import pytest
from django.test import override_settings
from django.utils import timezone

from inventory import redis_sales
from orders.invariants import check_invariants
from orders.models import Order
from purchase.passes import SALT
from purchase.signing import signature
from shop.services import flash_sale_cancel
from tests.concurrency import storm
from tests.conftest import bearer_client, client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def pass_for(client, sale) -> str:
    response = client.post(f"/api/v1/flash-sales/{sale.pk}/pass/", {}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["pass"]


def purchase_with(client, sale, purchase_pass: str | None, key: str):
    headers = {"HTTP_IDEMPOTENCY_KEY": key}
    if purchase_pass is not None:
        headers["HTTP_PURCHASE_PASS"] = purchase_pass
    return client.post(f"/api/v1/flash-sales/{sale.pk}/purchase/", {"quantity": 1}, format="json", **headers)


def signed(body: str) -> str:
    return f"{body}-{signature(SALT, body)}"


def test_a_pass_buys_for_its_shopper_and_is_shown_on_the_sale(make_sale, user):
    sale = make_sale(quantity=5, requires_pass=True)
    client = bearer_client(user)  # a bearer token, as integrators buy
    answer = client.post(f"/api/v1/flash-sales/{sale.pk}/pass/", {}, format="json").json()

    response = purchase_with(client, sale, answer["pass"], key="one")

    assert response.status_code == 202, response.content
    expires_in = (timezone.datetime.fromisoformat(answer["expires_at"]) - timezone.now()).total_seconds()
    assert 250 < expires_in <= 300
    shown = client.get(f"/api/v1/flash-sales/{sale.pk}/").json()
    assert (shown["requires_pass"], shown["pass_challenge"]) == (True, False)


@override_settings(PURCHASE_PASS_USES=2)
@pytest.mark.parametrize("door", ["bearer token", "authenticated client"])
def test_every_invalid_pass_is_refused_without_the_admission_script(make_sale, admissions, door):
    sale = make_sale(quantity=10, limit=10, requires_pass=True)
    other_sale = make_sale(quantity=10, requires_pass=True)
    shopper, stranger = UserFactory(), UserFactory()
    client = bearer_client(shopper) if door == "bearer token" else client_for(shopper)
    good = pass_for(client, sale)
    nonce = good.split("-")[3]
    past = int(time.time()) - 1
    invalid = {
        "missing": None,
        "empty": "",
        "garbage": "not a pass at all",
        "overlong": "1" * 200,
        "forged": good[:-1] + ("0" if good[-1] != "0" else "1"),
        "another shopper's": pass_for(client_for(stranger), sale),
        "another sale's": pass_for(client, other_sale),
        "expired": signed(f"{sale.pk}-{shopper.pk}-{past}-{nonce}"),
        "tampered expiry": f"{sale.pk}-{shopper.pk}-{past + 10**6}-{nonce}-{good.split('-')[4]}",
    }
    for kind, token in invalid.items():
        response = purchase_with(client, sale, token, key=f"k-{len(kind)}")
        assert (response.status_code, response.json()["code"]) == (403, "purchase_pass_invalid"), kind
    assert admissions == []

    # Its uses: two attempts, then the pass is spent. The script that takes its uses says so
    # once; this process then refuses the pass's replays without asking again.
    assert [purchase_with(client, sale, good, key=f"use-{i}").status_code for i in range(2)] == [202, 202]
    assert len(admissions) == 2
    for attempt in range(3):
        response = purchase_with(client, sale, good, key=f"replay-{attempt}")
        assert (response.status_code, response.json()["code"]) == (403, "purchase_pass_invalid")
    assert len(admissions) == 3

    assert redis_sales.sale_remaining(sale.pk, 1) == 8
    report = check_invariants()
    assert report.ok, report.violations


def storm_of_shoppers(sale, shoppers: int):
    clients = [client_for(UserFactory()) for _ in range(shoppers)]
    passes = [pass_for(client, sale) if sale.requires_pass else None for client in clients]
    return storm(list(range(shoppers)), lambda i: purchase_with(clients[i], sale, passes[i], key="k"), threads=15)


def test_a_storm_with_valid_passes_behaves_as_one_without(make_sale):
    outcomes = {}
    for requires_pass in (False, True):
        sale = make_sale(quantity=15, limit=1, requires_pass=requires_pass)
        sent = storm_of_shoppers(sale, 40)
        statuses = sorted(response.status_code for _, response in sent)
        outcomes[requires_pass] = (statuses, Order.objects.filter(flash_sale=sale).count())
        assert {response.json()["code"] for _, response in sent if response.status_code != 202} == {"sold_out"}

    assert outcomes[True] == outcomes[False] == ([202] * 15 + [409] * 25, 15)
    report = check_invariants()
    assert report.ok, report.violations


def test_passes_are_issued_only_shortly_before_the_start(make_sale, user_client, settings):
    settings.PURCHASE_PASS_LEAD = 60
    sale = make_sale(quantity=5, starts_in=600, requires_pass=True)

    response = user_client.post(f"/api/v1/flash-sales/{sale.pk}/pass/", {}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "too_early"
    assert body["issued_from"] == (sale.starts_at - timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    early = signed(f"{sale.pk}-1-{int(time.time()) + 300}-abc")  # not issued, so never valid
    assert purchase_with(user_client, sale, early, key="k").status_code == 403


def test_a_pass_is_asked_of_a_sale_that_requires_one_only(make_sale, user_client, api_client):
    sale = make_sale(quantity=5)

    response = user_client.post(f"/api/v1/flash-sales/{sale.pk}/pass/", {}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "pass_not_required")
    assert purchase(user_client, sale, key="no-pass-needed").status_code == 202
    assert user_client.post("/api/v1/flash-sales/999999/pass/", {}, format="json").status_code == 404
    assert api_client.post(f"/api/v1/flash-sales/{sale.pk}/pass/", {}, format="json").status_code == 401


def test_with_a_challenge_a_pass_is_issued_only_against_its_solution(make_sale, user_client, user):
    sale = make_sale(quantity=5, pass_challenge=True)
    url = f"/api/v1/flash-sales/{sale.pk}/pass/"

    refused = user_client.post(url, {}, format="json")
    assert refused.status_code == 400
    challenge = refused.json()["challenge"]
    assert refused.json()["code"] == "challenge_failed"
    solution = altcha.solve_challenge_v1(
        challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxNumber"]
    )
    payload = altcha.PayloadV1(
        challenge["algorithm"], challenge["challenge"], solution.number, challenge["salt"], challenge["signature"]
    ).to_base64()
    wrong = altcha.PayloadV1(
        challenge["algorithm"], challenge["challenge"], solution.number + 1, challenge["salt"], challenge["signature"]
    ).to_base64()

    for bad in (wrong, "bm90IGpzb24=", "%%%", "x" * 3000):
        response = user_client.post(url, {"challenge": bad}, format="json")
        assert response.status_code == 400, bad
    # Solved for this shopper: no good to another.
    assert client_for(UserFactory()).post(url, {"challenge": payload}, format="json").status_code == 400
    issued = user_client.post(url, {"challenge": payload}, format="json")
    assert issued.status_code == 200, issued.content
    assert purchase_with(user_client, sale, issued.json()["pass"], key="k").status_code == 202
    assert (sale.requires_pass, sale.pass_challenge) == (True, True)


def test_a_shopper_gets_a_few_passes_a_minute_at_most(make_sale, user):
    """RATE_LIMIT_PASS_PER_MINUTE is 3 unless set otherwise."""
    sale = make_sale(quantity=5, requires_pass=True)
    client = bearer_client(user)

    statuses = [client.post(f"/api/v1/flash-sales/{sale.pk}/pass/", {}, format="json").status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 429, 429]


def test_a_cancelled_sale_issues_no_pass(make_sale, user_client, staff):
    sale = make_sale(quantity=5, requires_pass=True)
    flash_sale_cancel(sale=sale, actor=staff)

    response = user_client.post(f"/api/v1/flash-sales/{sale.pk}/pass/", {}, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "ended")
