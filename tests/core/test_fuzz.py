"""Schemathesis against the OpenAPI schema: every operation, as a shopper and as staff."""

import pytest
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, settings
from rest_framework_simplejwt.tokens import AccessToken

from config.wsgi import application
from tests.factories import StaffFactory, UserFactory

SLOWEST_ACCEPTABLE_SECONDS = 5.0


schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture(autouse=True)
def demo_data(transactional_db, redis_client):
    """Real sales, products and stock for the generated ids to find now and then."""
    call_command("seed_demo")


@schemathesis.check
def not_slow(ctx, response, case):
    """A generous bound: anything slower is a hang, not a slow machine."""
    if response.elapsed > SLOWEST_ACCEPTABLE_SECONDS:
        raise AssertionError(f"took {response.elapsed:.1f}s")


def call_as(case, user) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {AccessToken.for_user(user)}", "Idempotency-Key": "fuzz"},
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
        additional_checks=[not_slow],
    )


# Derandomized: CI runs the same examples every time, so a failure is reproducible, not flaky.
FUZZ_SETTINGS = settings(
    max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_conforms_to_its_schema_for_a_shopper(case):
    call_as(case, UserFactory())


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_conforms_to_its_schema_for_staff(case):
    call_as(case, StaffFactory())
