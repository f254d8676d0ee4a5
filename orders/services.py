from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from orders.exceptions import InvalidTransition
from orders.models import ALLOWED_TRANSITIONS, Order, OrderTransition


def order_transition(
    *, order: Order, to: Order.Status, actor: AbstractBaseUser | None = None, reason: str = ""
) -> Order:
    """Move `order` to status `to` and record the move.

    The update is conditional on the status the order has now, so of two callers racing on
    the same order (a payment and a timeout, say) exactly one wins and the other gets
    InvalidTransition. Raises InvalidTransition, changing nothing, for a move the table
    does not allow.
    """
    current = Order.objects.values_list("status", flat=True).get(pk=order.pk)
    if to not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(f"An order that is {current} cannot become {to}.")
    with transaction.atomic():
        updated = Order.objects.filter(pk=order.pk, status=current).update(status=to, updated_at=timezone.now())
        if not updated:
            raise InvalidTransition("The order changed status meanwhile; try again.")
        OrderTransition.objects.create(order=order, from_status=current, to_status=to, actor=actor, reason=reason)
    order.status = to
    return order
