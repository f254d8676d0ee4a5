class DomainError(Exception):
    """Base of the errors that services raise on purpose.

    `code` is the machine-readable code clients see in `{"code", "detail"}`; `status_code`
    is the HTTP status the API answers with. Admin and storefront show `str(error)`.
    """

    code = "error"
    status_code = 400
    default_message = "The request could not be carried out."
    extra: dict = {}

    def __init__(self, message: str | None = None):
        super().__init__(message or self.default_message)


class IdempotencyKeyReused(DomainError):
    """The same Idempotency-Key came with a different request (any endpoint that takes one)."""

    code = "idempotency_key_reused"
    status_code = 422
    default_message = "This Idempotency-Key was used for a different request."


class RateLimited(DomainError):
    """Too many requests: the client may retry after `retry_after` seconds (Retry-After)."""

    code = "rate_limited"
    status_code = 429
    default_message = "Too many requests. Slow down and try again shortly."

    def __init__(self, retry_after: float):
        super().__init__()
        self.retry_after = retry_after
