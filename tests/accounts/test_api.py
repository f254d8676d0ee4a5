import pytest

from accounts.models import User

pytestmark = pytest.mark.django_db

PASSWORD = "a long and unusual passphrase"


def register(client, **overrides):
    body = {"username": "alice", "password": PASSWORD, "email": "alice@example.com", **overrides}
    return client.post("/api/v1/auth/register/", body, format="json")


def test_register_then_token_then_an_authenticated_call(api_client):
    # Given a new account
    response = register(api_client)
    assert response.status_code == 201
    assert response.json() == {"id": User.objects.get(username="alice").pk, "username": "alice"}

    # When it asks for a token
    response = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"access", "refresh"}

    # Then the access token opens an authenticated endpoint
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    response = api_client.get("/api/v1/orders/")
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}

    # And the refresh token gives a new access token
    response = api_client.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 200
    assert "access" in response.json()


def test_bad_credentials_get_401(api_client):
    register(api_client)

    response = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "no_active_account"


def test_a_garbage_bearer_token_gets_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

    response = api_client.get("/api/v1/orders/")

    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_a_taken_username_is_refused_ignoring_case(api_client):
    register(api_client)

    response = register(api_client, username="ALICE")

    assert response.status_code == 400
    assert "username" in response.json()["errors"]
    assert User.objects.count() == 1


@pytest.mark.parametrize("password", ["short", "password123", "12345678901"])
def test_a_weak_password_is_refused(api_client, password):
    response = register(api_client, password=password)

    assert response.status_code == 400
    assert "password" in response.json()["errors"]
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "overrides",
    [{"username": ""}, {"username": "has space"}, {"username": "x" * 151}, {"email": "not-an-email"}],
)
def test_invalid_registration_fields_are_refused(api_client, overrides):
    response = register(api_client, **overrides)

    assert response.status_code == 400
    assert set(response.json()["errors"]) == set(overrides)
    assert not User.objects.exists()
