"""Idempotency-Key for write endpoints that create something (the purchase has its own, in Lua).

A repeat with the same key from the same user gets the first response, status and body; the
same key with a different request gets 422 `idempotency_key_reused`. Answers are kept in
Redis for IDEMPOTENCY_KEY_TTL seconds. A refusal (any 4xx, raised or returned) is an answer
too; server errors and outages (5xx) are not kept, so a retry runs again.
"""

import functools
import hashlib
import json

from django.conf import settings
from django.core.cache import cache
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.response import Response

from core.exceptions import IdempotencyKeyReused

MAX_KEY_LENGTH = 255

IDEMPOTENCY_KEY_HEADER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, description="At most 255 characters; makes a retry safe."
)
IN_PROGRESS_TTL = 60


class IdempotencyKeyInvalid(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The Idempotency-Key header must be 1 to 255 printable ASCII characters."
    default_code = "idempotency_key_invalid"


class IdempotencyKeyRequired(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "This endpoint needs an Idempotency-Key header."
    default_code = "idempotency_key_required"


class IdempotentRequestInProgress(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "A request with this Idempotency-Key is still being processed."
    default_code = "request_in_progress"


def idempotency_key(request, *, required: bool) -> str | None:
    """The request's Idempotency-Key, validated; None when absent and not required."""
    return idempotency_key_from(request.headers.get("Idempotency-Key"), required=required)


def idempotency_key_from(key: str | None, *, required: bool) -> str | None:
    """An Idempotency-Key header's value, validated, as `idempotency_key` does."""
    if key is None:
        if required:
            raise IdempotencyKeyRequired()
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise IdempotencyKeyInvalid()
    return key


def idempotent(view_method):
    """Decorate a DRF view's `post` so that an Idempotency-Key makes it safe to repeat."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = idempotency_key(request, required=False)
        if key is None:
            return view_method(self, request, *args, **kwargs)
        digest = hashlib.sha256(key.encode()).hexdigest()
        cache_key = f"idem:{request.user.pk}:{request.path}:{digest}"
        fingerprint = hashlib.sha256(json.dumps(request.data, sort_keys=True, default=str).encode()).hexdigest()
        if not cache.add(cache_key, {"fingerprint": fingerprint, "done": False}, IN_PROGRESS_TTL):
            first = cache.get(cache_key) or {}
            if first.get("fingerprint") != fingerprint:
                raise IdempotencyKeyReused()
            if not first.get("done"):
                raise IdempotentRequestInProgress()
            return Response(first["body"], status=first["status"])
        try:
            response = view_method(self, request, *args, **kwargs)
        except Exception as error:
            try:
                response = self.handle_exception(error)
            except Exception:
                cache.delete(cache_key)
                raise
        if response.status_code >= 500:
            cache.delete(cache_key)
        else:
            record = {"fingerprint": fingerprint, "done": True, "status": response.status_code, "body": response.data}
            cache.set(cache_key, record, settings.IDEMPOTENCY_KEY_TTL)
        return response

    return wrapper
