import time

import pytest
from rest_framework_simplejwt.tokens import AccessToken

import core.api.authentication
from core.breaker import redis_breaker
from inventory import redis_sales
from orders.invariants import check_invariants
from tests.conftest import bearer_client, purchase, redis_commands
from tests.processes import http, running_web_server

pytestmark = pytest.mark.django_db

WRITE_URL = "/api/v1/orders/999999/cancel/"  # a write that changes nothing: 404 once admitted


@pytest.fixture
def limits(settings, redis_client):
    def set_limits(**groups):
        settings.RATE_LIMITS = groups

    redis_breaker.reset()
    yield set_limits
    redis_breaker.reset()


def test_a_burst_of_the_bucket_size_passes_the_next_is_refused_then_refills(limits, user):
    limits(write={"user": (5.0, 3)})
    client = bearer_client(user)

    statuses = [client.post(WRITE_URL).status_code for _ in range(3)]
    refused = client.post(WRITE_URL)

    assert statuses == [404, 404, 404]
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert refused["RateLimit-Limit"] == "3"
    assert refused["RateLimit-Remaining"] == "0"
    assert int(refused["RateLimit-Reset"]) >= 1

    time.sleep(0.25)  # one token comes back every 0.2 s
    again = client.post(WRITE_URL)
    assert again.status_code == 404
    assert again["RateLimit-Limit"] == "3"


def test_remaining_counts_down(limits, user):
    limits(write={"user": (1.0, 5)})
    client = bearer_client(user)

    remaining = [int(client.post(WRITE_URL)["RateLimit-Remaining"]) for _ in range(5)]

    assert remaining == [4, 3, 2, 1, 0]


def test_a_spoofed_x_forwarded_for_does_not_escape_the_ip_limit(limits, api_client):
    limits(read={"ip": (1.0, 2)})

    statuses = [api_client.get("/api/v1/products/", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}").status_code for i in range(4)]

    assert statuses == [200, 200, 429, 429]


def test_behind_a_trusted_proxy_the_forwarded_client_is_limited(limits, api_client, settings):
    settings.RATE_LIMIT_TRUSTED_PROXIES = ["127.0.0.1/32"]
    limits(read={"ip": (1.0, 1)})

    def get(client_ip: str) -> int:
        return api_client.get("/api/v1/products/", REMOTE_ADDR="127.0.0.1",
                              HTTP_X_FORWARDED_FOR=f"{client_ip}, 127.0.0.1").status_code  # fmt: skip

    assert [get("203.0.113.1"), get("203.0.113.2"), get("203.0.113.1")] == [200, 200, 429]


def test_login_is_limited_per_username_across_addresses(limits, api_client):
    limits(login={"username": (0.01, 2), "ip": (100.0, 100)})
    body = {"username": "alice", "password": "guess"}

    statuses = [
        api_client.post("/api/v1/auth/token/", body, REMOTE_ADDR=f"198.51.100.{i}").status_code for i in range(3)
    ]
    other_user = api_client.post("/api/v1/auth/token/", {**body, "username": "bob"}, REMOTE_ADDR="198.51.100.9")

    assert statuses == [401, 401, 429]
    assert other_user.status_code == 401


def test_health_checks_do_not_spend_the_read_budget(limits, api_client):
    limits(read={"ip": (0.01, 1)})

    assert [api_client.get("/healthz").status_code for _ in range(3)] == [200, 200, 200]
    assert api_client.get("/api/v1/products/").status_code == 200
    assert api_client.get("/api/v1/products/").status_code == 429


def test_with_redis_unreachable_the_per_process_bucket_still_limits(limits, user, settings):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    limits(write={"user": (0.01, 2)})
    client = bearer_client(user)

    assert [client.post(WRITE_URL).status_code for _ in range(3)] == [404, 404, 429]


@pytest.mark.django_db(transaction=True)
def test_two_server_processes_share_one_users_bucket(redis_client, user, tmp_path):
    token = str(AccessToken.for_user(user))
    headers = {"Authorization": f"Bearer {token}"}
    env = {"RATE_LIMIT_USER_RATE": "0.01", "RATE_LIMIT_USER_BURST": "4", "RATE_LIMIT_IP_RATE": "0"}

    with running_web_server(tmp_path, "a", **env) as a, running_web_server(tmp_path, "b", **env) as b:
        statuses = [http("POST", f"{base}{WRITE_URL}", headers)[0] for base in (a, b, a, b, a, b)]

    assert statuses == [404, 404, 404, 404, 429, 429]


@pytest.mark.django_db(transaction=True)
def test_purchases_share_their_buckets_in_the_admission_scripts_round_trip(limits, user, make_sale):
    # Given a purchase limit of 3 at once, and a shopper buying through two server processes
    # (two clients: each has its own per-process bucket, so only the shared one can refuse)
    sale = make_sale(quantity=10, limit=10)
    limits(purchase={"user": (1.0, 3)})
    first, second = bearer_client(user), bearer_client(user)

    answers = [purchase(client, sale, key=f"k{i}") for i, client in enumerate([first, first, second, second])]

    # Then the fourth is refused by the shared bucket, takes nothing, and is not its key's answer
    assert [answer.status_code for answer in answers] == [202, 202, 202, 429]
    refused = answers[-1]
    assert refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert redis_sales.sale_remaining(sale.pk) == 7
    time.sleep(1.1)  # one token comes back every second
    assert purchase(second, sale, key="k3").status_code == 202
    assert check_invariants().ok, check_invariants().violations


def test_a_purchase_verifies_its_token_once_for_the_limiter_and_the_view(limits, user, make_sale):
    sale = make_sale(quantity=5)
    limits(purchase={"user": (5.0, 10)})
    core.api.authentication._verified.cache_clear()

    assert purchase(bearer_client(user), sale, key="once").status_code == 202
    # One check of the token's signature and claims; the view reads what the limiter verified.
    assert core.api.authentication._verified.cache_info()[:2] == (0, 1)  # hits, misses


def test_the_crowds_pages_are_limited_by_each_process_alone_per_address(limits, client, redis_client):
    limits(page={"ip": (0.01, 2)}, read={"ip": (0.01, 1)})
    before = redis_commands(redis_client)

    answers = [client.get("/") for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[-1]["X-Frame-Options"] == "DENY"  # the refusal's page cannot be framed either
    assert redis_commands(redis_client) == before  # no shared bucket, no session
    assert client.get("/api/v1/products/").status_code == 200  # the read budget is another
