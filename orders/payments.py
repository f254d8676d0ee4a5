"""Payment providers behind one small interface; the shop ships a test-mode one.

Every call carries an idempotency key: a provider answers a repeated key with its first answer
and never charges (or refunds) twice, as real providers do.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from orders.models import Order


@dataclass(frozen=True)
class PaymentResult:
    approved: bool
    reference: str
    message: str = ""


class PaymentProvider(Protocol):
    def charge(self, *, order: Order, idempotency_key: str) -> PaymentResult: ...

    def refund(self, *, reference: str, amount: Decimal, idempotency_key: str) -> PaymentResult: ...


class TestModePaymentProvider:
    """Approves every charge and refund at once; nothing leaves the shop. The reference is
    derived from the key, so a repeated key gets the same answer."""

    def charge(self, *, order: Order, idempotency_key: str) -> PaymentResult:
        return PaymentResult(approved=True, reference=f"test-{idempotency_key}")

    def refund(self, *, reference: str, amount: Decimal, idempotency_key: str) -> PaymentResult:
        return PaymentResult(approved=True, reference=f"test-refund-{idempotency_key}")


def payment_provider() -> PaymentProvider:
    return import_string(settings.PAYMENT_PROVIDER)()
