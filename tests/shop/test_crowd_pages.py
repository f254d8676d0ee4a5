"""The pages a crowd refreshes come from each process's memory, the same for every shopper but
for the marks filled in per request (shop/pages.py), and the state poll with them."""

import json
import re
import time

import pytest
from django.core import signing
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.utils import timezone

from accounts.sessions import CARD, CARD_COOKIE
from config import wsgi
from config.wsgi import application
from inventory import redis_sales
from limits.buckets import local_buckets
from shop import door as shop_door
from shop import pages, selectors
from shop.forms import BuyForm
from shop.selectors import flash_sale_state
from tests.conftest import client_for, purchase, redis_commands
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# What differs between two servings of one page: the server's clock, the CSRF token, the attempt.
PER_REQUEST = [
    (re.compile(r'data-server-now="\d+"'), 'data-server-now="-"'),
    (re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"'), 'name="csrfmiddlewaretoken" value="-"'),
    (re.compile(r'name="attempt" value="[^"]+"'), 'name="attempt" value="-"'),
]


def per_request_removed(html: str) -> str:
    for pattern, replacement in PER_REQUEST:
        html = pattern.sub(replacement, html)
    return html


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_page_served_from_memory_is_the_page_django_draws_for_that_shopper(make_sale):
    sale = make_sale(quantity=5)
    shopper = UserFactory(username="ada<script>")
    client = signed_in(shopper)
    first = client.get(f"/sales/{sale.pk}/").content.decode()

    # When the page is served again, from memory
    again = client.get(f"/sales/{sale.pk}/").content.decode()

    # Then it is what the template draws with the shopper's own request
    request = RequestFactory().get(f"/sales/{sale.pk}/")
    request.user, request.session = shopper, client.session
    drawn = render_to_string(
        "shop/sale_detail.html",
        {
            "sale": sale,
            "state": flash_sale_state(sale_id=sale.pk),
            "started": True,
            "form": BuyForm(limit=sale.per_user_limit, initial={"attempt": "any"}),
            "held": "0",  # what the shopper holds, as the page fills it in for them
            "holding": "",
            "at_limit": "",
            "pay_minutes": 15,
        },
        request=request,
    )
    assert per_request_removed(again) == per_request_removed(first) == per_request_removed(drawn)
    assert "Sign out ada&lt;script&gt;" in again and "\ue000" not in again


def test_each_serving_has_its_own_token_attempt_and_clock_and_no_query(
    make_sale, django_assert_num_queries, redis_client
):
    sale = make_sale(quantity=5)
    client = signed_in(UserFactory())
    client.get(f"/sales/{sale.pk}/")  # the session's first page writes the card's cookie
    assert CARD_COOKIE in client.cookies
    before = redis_commands(redis_client)

    with django_assert_num_queries(0):
        one, two = client.get(f"/sales/{sale.pk}/"), client.get(f"/sales/{sale.pk}/")

    # Not even the session is read: one round trip each for what the shopper holds (HGET, EXISTS)
    assert redis_commands(redis_client) - before == 4

    attempts = [re.search(r'name="attempt" value="([0-9a-f]{32})"', r.content.decode())[1] for r in (one, two)]
    assert attempts[0] != attempts[1]
    assert 'name="csrfmiddlewaretoken" value="\ue000' not in one.content.decode()
    assert one["Cache-Control"] == "private, no-cache"


def test_two_shoppers_share_the_drawing_not_the_greeting(make_sale):
    sale = make_sale(quantity=5)
    ada, bob = UserFactory(username="ada"), UserFactory(username="bob")

    pages_of = {user.username: signed_in(user).get(f"/sales/{sale.pk}/").content.decode() for user in (ada, bob)}

    assert "Sign out ada" in pages_of["ada"] and "Sign out bob" in pages_of["bob"]
    assert "Sign out ada" not in pages_of["bob"]


def test_the_anonymous_page_is_the_proxys_to_hold_and_sets_no_cookie(make_sale):
    sale = make_sale(quantity=5)

    response = Client().get(f"/sales/{sale.pk}/")

    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=1"
    assert "Cookie" in response["Vary"]
    assert not response.cookies
    assert "Sign in" in response.content.decode() and "csrfmiddlewaretoken" not in response.content.decode()


def test_a_session_from_before_the_card_is_greeted_after_one_look_at_the_user(make_sale):
    sale = make_sale(quantity=5)
    client = signed_in(UserFactory(username="carol"))
    session = client.session
    del session[CARD]
    session.save()

    assert "Sign out carol" in client.get(f"/sales/{sale.pk}/").content.decode()
    assert client.session[CARD] == {"id": int(client.session["_auth_user_id"]), "name": "carol", "staff": False}
    assert CARD_COOKIE in client.cookies


def test_a_card_is_believed_only_beside_a_session_and_signed_and_goes_with_signing_out(make_sale):
    sale = make_sale(quantity=5)
    client = signed_in(UserFactory(username="dan"))
    client.get(f"/sales/{sale.pk}/")
    card = client.cookies[CARD_COOKIE].value

    # A card without its session cookie greets no one
    stranger = Client()
    stranger.cookies[CARD_COOKIE] = card
    assert "Sign out dan" not in stranger.get(f"/sales/{sale.pk}/").content.decode()
    # Nor does a card someone wrote themselves, beside any session cookie
    forger = Client()
    forger.cookies["sessionid"] = "made-up"
    forger.cookies[CARD_COOKIE] = signing.dumps({"name": "eve", "staff": True}, salt="another")
    assert "Sign out" not in forger.get(f"/sales/{sale.pk}/").content.decode()

    # Signing out takes the card with it
    signed_out = client.post("/accounts/logout/")
    assert signed_out.cookies[CARD_COOKIE].value == ""
    assert "Sign in" in client.get(f"/sales/{sale.pk}/").content.decode()


def test_a_shopper_with_a_message_gets_the_page_drawn_with_it(make_sale):
    sale = make_sale(quantity=5)
    client = signed_in(UserFactory())
    client.get(f"/sales/{sale.pk}/")

    # A Buy form without its attempt is refused with a message on the sale page
    client.post(f"/sales/{sale.pk}/buy/", {"quantity": 1})
    page = client.get(f"/sales/{sale.pk}/").content.decode()

    assert 'class="messages"' in page
    assert re.search(r'name="attempt" value="[0-9a-f]{32}"', page)


def test_an_unknown_sale_is_404_and_not_remembered(db):
    assert Client().get("/sales/999999/").status_code == 404
    assert not pages._pages


def test_a_page_is_drawn_again_once_it_is_older_than_a_second(make_sale, monkeypatch):
    monkeypatch.setattr(pages, "PAGE_SECONDS", 0.05)
    sale = make_sale(quantity=5, limit=5)
    shown = Client().get(f"/sales/{sale.pk}/").content.decode()
    assert '<strong data-role="remaining">5</strong>' in shown

    assert purchase(client_for(UserFactory()), sale, key="k", quantity=2).status_code == 202
    time.sleep(0.6)  # past the page's life and the sale state's

    assert '<strong data-role="remaining">3</strong>' in Client().get(f"/sales/{sale.pk}/").content.decode()


def test_the_state_poll_costs_no_query_and_no_redis_and_carries_a_fresh_clock(
    make_sale, redis_client, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(selectors, "SALE_STATE_SECONDS", 60)
    sale = make_sale(quantity=5)
    client = Client()
    client.get(f"/sales/{sale.pk}/state/")
    before = redis_commands(redis_client)

    with django_assert_num_queries(0):
        answers = [client.get(f"/sales/{sale.pk}/state/") for _ in range(3)]

    assert redis_commands(redis_client) == before
    times = [answer.json()["server_time"] for answer in answers]
    assert times == sorted(times) and len(set(times)) == 3
    assert {answer.json()["remaining"] for answer in answers} == {redis_sales.sale_remaining(sale.pk)}
    assert answers[0]["Cache-Control"] == "public, max-age=1"


def test_the_state_poll_turns_its_badge_at_the_start_though_nothing_else_changed(make_sale, monkeypatch):
    monkeypatch.setattr(selectors, "SALE_STATE_SECONDS", 60)  # one state read, before and after the start
    sale = make_sale(quantity=5, starts_in=1.5)
    assert Client().get(f"/sales/{sale.pk}/state/").json()["badge"] == "scheduled"

    time.sleep(max(0.0, (sale.starts_at - timezone.now()).total_seconds()) + 0.05)

    assert Client().get(f"/sales/{sale.pk}/state/").json()["badge"] == "live"


def through_the_server(environ: dict) -> tuple[str, dict, bytes]:
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started["status"], started["headers"] = status, dict(response_headers)

    body = b"".join(application(environ, start_response))
    return started["status"], started["headers"], body


@pytest.fixture
def handed_on(monkeypatch) -> list[str]:
    """The paths the state door handed to the full stack."""
    paths, full_stack = [], wsgi.doors.application

    def handed(environ, start_response):
        paths.append(environ["PATH_INFO"])
        return full_stack(environ, start_response)

    monkeypatch.setattr(wsgi.doors, "application", handed)
    return paths


@pytest.mark.django_db(transaction=True)  # the door closes the connection when a request ends
@pytest.mark.parametrize("behind_tls", [False, True], ids=["plain HTTP", "behind a TLS proxy, with HSTS"])
def test_the_state_door_answers_as_the_full_stack_does(behind_tls, make_sale, settings, monkeypatch, handed_on):
    monkeypatch.setattr(selectors, "SALE_STATE_SECONDS", 60)
    settings.RATE_LIMITS = {"page": {"ip": (100, 100)}}
    forwarded = {}
    if behind_tls:
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        settings.SECURE_SSL_REDIRECT, settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_PRELOAD = True, 3600, True
        forwarded = {"HTTP_X_FORWARDED_PROTO": "https"}
    sale = make_sale(quantity=5)
    path = f"/sales/{sale.pk}/state/"
    environ = RequestFactory().get(path, HTTP_X_REQUEST_ID="poll-0001", HTTP_HOST="testserver", **forwarded).environ
    takes = wsgi.doors.takes
    assert takes(environ) and not takes(RequestFactory().post(path).environ)
    assert not takes(RequestFactory().get(f"/sales/{sale.pk}/").environ)

    status, headers, body = through_the_server(environ)
    local_buckets.clear()  # the same address's first poll each time
    full = Client().get(path, HTTP_X_REQUEST_ID="poll-0001", **forwarded)

    assert handed_on == []
    assert status == "200 OK" and full.status_code == 200
    door, stack = json.loads(body), full.json()
    assert door.pop("server_time") <= stack.pop("server_time")
    assert door == stack
    # Every header alike (the length follows the clock's digits), the rate limiter's too.
    assert {name: value for name, value in headers.items() if name != "Content-Length"} == {
        name: value for name, value in full.items() if name != "Content-Length"
    }
    assert {"RateLimit-Limit", "X-Content-Type-Options", "X-Frame-Options"} <= headers.keys()
    assert ("Strict-Transport-Security" in headers) == behind_tls


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "case",
    [
        "no such sale",
        "a host the shop does not serve",
        "plain HTTP to a shop that redirects to https",
        "over the rate limit",
        "a failure no one expected",
    ],
)
def test_the_state_door_hands_the_unusual_to_the_full_stack(case, make_sale, settings, monkeypatch, handed_on):
    sale = make_sale(quantity=5)
    path, host, expected = f"/sales/{sale.pk}/state/", "testserver", "200 OK"
    if case == "no such sale":
        path, expected = "/sales/999999/state/", "404 Not Found"
    elif case == "a host the shop does not serve":
        settings.ALLOWED_HOSTS, host, expected = ["testserver"], "evil.example.net", "400 Bad Request"
    elif case == "plain HTTP to a shop that redirects to https":
        # The full stack's SecurityMiddleware read the setting when it was made: that the door
        # did not answer is what this case holds.
        settings.SECURE_SSL_REDIRECT, expected = True, None
    elif case == "over the rate limit":
        settings.RATE_LIMITS = {"page": {"ip": (0.001, 1)}}
        through_the_server(RequestFactory().get(path, HTTP_HOST=host).environ)
        handed_on.clear()
        expected = "429 Too Many Requests"
    else:
        monkeypatch.setattr(shop_door, "flash_sale_state", lambda sale_id: 1 / 0)

    status, headers, _ = through_the_server(RequestFactory().get(path, HTTP_HOST=host).environ)

    assert handed_on == [path]
    assert status == expected or expected is None
    assert headers["X-Request-ID"]


def test_the_sale_page_tells_each_shopper_what_they_hold_and_closes_buy_now_at_their_limit(make_sale):
    # Given a sale of two per shopper, a shopper who holds both and one who holds one
    sale = make_sale(quantity=10, limit=2)
    full, half, newcomer = UserFactory(), UserFactory(), UserFactory()
    assert purchase(client_for(full), sale, key="a", quantity=2).status_code == 202
    assert purchase(client_for(half), sale, key="b").status_code == 202

    # When each opens the page (drawn once for all of them)
    pages = {user: signed_in(user).get(f"/sales/{sale.pk}/").content.decode() for user in (full, half, newcomer)}

    # Then each is told their own holding, and Buy now is closed for the one at the limit
    def button(page: str) -> str:
        return re.search(r'<button type="submit" data-role="buy"[^>]*>', page)[0]

    assert "You hold 2 of the 2 allowed per shopper: you cannot buy more" in pages[full]
    assert 'data-held="2"' in pages[full] and "disabled" in button(pages[full])
    assert "you may buy 1 more" in pages[half] and "disabled" not in button(pages[half])
    assert 'data-held="0"' in pages[newcomer] and "You hold" not in pages[newcomer]
    assert all("\ue000" not in page for page in pages.values())
    # And no-JavaScript's Buy now past the limit is refused all the same
    assert purchase(client_for(full), sale, key="c").json()["code"] == "limit_exceeded"
