import pytest
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from tests.factories import StaffFactory, UserFactory


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def staff(db):
    return StaffFactory()


@pytest.fixture
def user_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def redis_client():
    """The shop's Redis, emptied before and after the test."""
    client = get_redis_connection("default")
    client.flushdb()
    yield client
    client.flushdb()
