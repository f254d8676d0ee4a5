"""E-mails to shoppers about their orders: confirmed (with the time to pay), payment received (the
receipt), cancelled (with the reason: not paid in time, or by the shop) and refunded.

An event schedules its mail when its transaction commits (`order_emails_schedule`); the Celery
task `orders.tasks.order_emails_send` claims each order's mail for the event (one OrderEmail row,
unique per order and event) before it sends it, so a retried or repeated task mails no one
twice. A mail that could not be handed to the mail server gives its claim back, and the task's
retry sends it; one that was handed over and then lost (a worker killed mid-send) stays
claimed and unsent: at most once, never twice.
"""

from collections.abc import Iterable

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from orders.models import Order, OrderEmail

# The event each status an order moves to tells its shopper of (orders.services.order_transition).
EMAIL_OF_STATUS = {
    Order.Status.PAID: OrderEmail.Kind.PAID,
    Order.Status.CANCELLED: OrderEmail.Kind.CANCELLED,
    Order.Status.REFUNDED: OrderEmail.Kind.REFUNDED,
}
STATUS_OF_EMAIL = {kind: status for status, kind in EMAIL_OF_STATUS.items()}
SUBJECTS = {
    OrderEmail.Kind.CONFIRMED: "Your order #{number} is confirmed: pay by {pay_by}",
    OrderEmail.Kind.PAID: "Receipt for your order #{number}",
    OrderEmail.Kind.CANCELLED: "Your order #{number} was cancelled",
    OrderEmail.Kind.REFUNDED: "Your order #{number} was refunded",
}


def order_emails_schedule(*, order_ids: Iterable[int], kind: OrderEmail.Kind) -> None:
    """Send the event's mail to each order's shopper once the current transaction commits."""
    from orders.tasks import order_emails_send  # Here, not at the top: the tasks import this module.

    order_ids = list(order_ids)
    if order_ids:
        # Robust: the event has committed; a broker outage must not turn it into an error.
        transaction.on_commit(lambda: order_emails_send.delay(order_ids, kind), robust=True)


def order_emails_claim(*, order_ids: Iterable[int], kind: OrderEmail.Kind) -> list[int]:
    """Claim the event's mail of each order; returns the orders this call claimed (none that an
    earlier run claimed)."""
    order_ids = list(order_ids)
    if not order_ids:
        return []
    table = OrderEmail._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (order_id, kind, claimed_at) SELECT unnest(%s), %s, %s "
            "ON CONFLICT (order_id, kind) DO NOTHING RETURNING order_id",
            [order_ids, kind, timezone.now()],
        )
        return [row[0] for row in cursor.fetchall()]


def order_emails_send(*, order_ids: Iterable[int], kind: OrderEmail.Kind) -> int:
    """Send the event's mail to the shoppers whose mail this run claims; returns how many went.
    Raises OSError (the mail server is away) with the unsent claims given back."""
    claimed = order_emails_claim(order_ids=order_ids, kind=kind)
    orders = Order.objects.filter(pk__in=claimed).select_related("user", "sku__product").order_by("pk")
    unsent = set(claimed)
    sent = 0
    with get_connection() as mail:
        try:
            for order in orders:
                if order.user.email:
                    mail.send_messages([order_email_message(order=order, kind=kind)])
                    OrderEmail.objects.filter(order=order, kind=kind).update(sent_at=timezone.now())
                    sent += 1
                unsent.discard(order.pk)
        except OSError:
            OrderEmail.objects.filter(order_id__in=unsent, kind=kind).delete()
            raise
    return sent


def order_email_message(*, order: Order, kind: OrderEmail.Kind) -> EmailMultiAlternatives:
    """The event's mail to the order's shopper, as text and HTML from its templates."""
    reason = ""
    if kind in (OrderEmail.Kind.CANCELLED, OrderEmail.Kind.REFUNDED):
        moved = order.transitions.filter(to_status=STATUS_OF_EMAIL[kind]).first()
        reason = moved.reason if moved else ""
    context = {
        "order": order,
        "product": order.sku.product,
        "reason": reason,
        "order_url": settings.SHOP_URL + reverse("orders:detail", args=[order.pk]),
        "shop_url": settings.SHOP_URL + "/",
    }
    pay_by = timezone.localtime(order.pay_by)
    subject = SUBJECTS[kind].format(number=order.pk, pay_by=f"{pay_by:%H:%M %Z}")
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"orders/email/{kind}.txt", context),
        to=[order.user.email],
    )
    message.attach_alternative(render_to_string(f"orders/email/{kind}.html", context), "text/html")
    return message
