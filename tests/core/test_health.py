import contextlib
import socket

import pytest
from django.db import connection
from django.test import override_settings


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def database_at_closed_port():
    original = connection.settings_dict.copy()
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port()))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)


def redis_cache_at(url: str) -> dict:
    from django.conf import settings

    return {"default": {**settings.CACHES["default"], "LOCATION": url}}


@pytest.mark.django_db
def test_healthz_is_ok_when_everything_is_up(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"database": "ok", "redis": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_healthz_names_redis_when_it_is_unreachable(client):
    with override_settings(CACHES=redis_cache_at(f"redis://127.0.0.1:{closed_port()}/0")):
        response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["redis"].startswith("error")
    assert body["database"] == "ok"


@pytest.mark.django_db
def test_healthz_names_the_broker_when_it_is_unreachable(client):
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"].startswith("error")
    assert response.json()["redis"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_healthz_names_the_database_when_it_is_unreachable(client):
    with database_at_closed_port():
        response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["database"].startswith("error")
    assert body["redis"] == "ok"


def test_livez_answers_without_asking_any_dependency(client, settings):
    settings.CACHES = redis_cache_at(f"redis://127.0.0.1:{closed_port()}/0")

    response = client.get("/livez")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.django_db
def test_healthz_asks_the_broker_at_most_once_in_its_cache_time(client, monkeypatch):
    from kombu import Connection

    import core.health

    opened = []

    class CountingConnection(Connection):
        def __init__(self, *args, **kwargs):
            opened.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(core.health, "Connection", CountingConnection)
    answers = [client.get("/healthz").status_code for _ in range(5)]

    assert answers == [200] * 5
    assert len(opened) <= 1


@pytest.mark.django_db
def test_healthz_is_rate_limited_per_client_address(client, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "health": {"ip": (0.5, 3)}}

    answers = [client.get("/healthz").status_code for _ in range(4)]
    elsewhere = client.get("/healthz", REMOTE_ADDR="10.9.8.7")

    assert answers == [200, 200, 200, 429]
    assert elsewhere.status_code == 200
