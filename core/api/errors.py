"""One place that turns every error into the contract's `{"code", "detail"}` body."""

import logging
import math

import redis
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import OperationalError
from django.http import Http404, JsonResponse
from django_redis.exceptions import ConnectionInterrupted
from kombu.exceptions import KombuError
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from core.exceptions import DomainError

logger = logging.getLogger(__name__)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class DependencyUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service the shop depends on is briefly unavailable. Please try again."
    default_code = "unavailable"


# A dependency that is down is a 503 the client can retry, not a server error.
DEPENDENCY_ERRORS = (redis.RedisError, ConnectionInterrupted, OperationalError, KombuError)


class DomainErrorResponse(exceptions.APIException):
    def __init__(self, error: DomainError):
        self.status_code = error.status_code
        super().__init__(detail=str(error), code=error.code)


def exception_handler(exc, context):
    retry_after = getattr(exc, "retry_after", None)
    extra = {}
    if isinstance(exc, DomainError):
        extra = exc.extra
        exc = DomainErrorResponse(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, DEPENDENCY_ERRORS):
        logger.warning("dependency unavailable: %r", exc)
        exc = DependencyUnavailable()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None

    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "code": "invalid",
            "detail": first_message(exc.detail) or "Invalid input.",
            "errors": exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail},
        }
    else:
        response.data = {"code": error_code(exc), "detail": str(exc.detail), **extra}
    if retry_after is not None:
        _say_when_to_retry(response, retry_after)
    return response


def _say_when_to_retry(response, seconds: float) -> None:
    for name, value in retry_headers(seconds):
        response[name] = value


def retry_headers(seconds: float) -> list[tuple[str, str]]:
    """The headers of a refusal that says when to try again."""
    return [("Retry-After", str(max(1, math.ceil(seconds)))), ("RateLimit-Remaining", "0")]


def domain_error(error: DomainError) -> tuple[int, dict]:
    """A service's refusal as the contract's status and body, outside DRF."""
    return error.status_code, {"code": error.code, "detail": str(error), **error.extra}


def dependency_unavailable() -> tuple[int, dict]:
    """A dependency away, as the contract's 503 status and body, outside DRF."""
    return DependencyUnavailable.status_code, {
        "code": DependencyUnavailable.default_code,
        "detail": str(DependencyUnavailable.default_detail),
    }


def error_code(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def first_message(detail) -> str | None:
    """The first human message in a nested DRF error structure, for the `detail` field."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            message = first_message(value)
            if message:
                return message if field == "non_field_errors" else f"{field}: {message}"
        return None
    if isinstance(detail, list):
        return next((m for m in map(first_message, detail) if m), None)
    return str(detail)


def json_error(code: str, detail: str, status_code: int) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status_code)
