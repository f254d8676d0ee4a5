"""Shoppers' e-mails (orders/emails.py): one per order and event, confirmed, paid, cancelled and
refunded, sent by Celery after commit, and never twice however often the task runs."""

import email
import smtplib
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.utils import timezone

from orders import tasks
from orders.models import Order, OrderEmail
from orders.services import order_cancel, order_pay, order_refund, orders_expire_unpaid
from orders.writer import order_writer_drain
from tests.concurrency import run_together
from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def mails_to(user) -> list[mail.EmailMessage]:
    return [message for message in mail.outbox if message.to == [user.email]]


@pytest.fixture
def order(make_sale):
    """A shopper's order, written by the (eager) writer from a purchase."""
    shopper = UserFactory()
    assert purchase(client_for(shopper), make_sale(quantity=5), key="k").status_code == 202
    return Order.objects.get(user=shopper)


def test_a_written_order_mails_its_shopper_once_with_the_time_to_pay_and_the_orders_page(order, settings):
    [confirmed] = mails_to(order.user)

    assert confirmed.subject == f"Your order #{order.pk} is confirmed: pay by {order.pay_by:%H:%M} UTC"
    assert f"{settings.SHOP_URL}/orders/{order.pk}/" in confirmed.body
    assert "€9.99" in confirmed.body and "Pay by" in confirmed.body
    [(html, kind)] = confirmed.alternatives
    assert kind == "text/html" and f"/orders/{order.pk}/" in html and "Pay now" in html
    assert OrderEmail.objects.get(order=order).sent_at is not None


def test_each_event_mails_once_and_the_shoppers_own_cancel_not_at_all(make_sale, staff):
    sale = make_sale(quantity=5, limit=4)
    shopper = UserFactory()
    for key in ("a", "b", "c", "d"):
        assert purchase(client_for(shopper), sale, key=key).status_code == 202
    order_writer_drain(sale_id=sale.pk, consumer="test")
    paid, refunded, cancelled, unpaid = Order.objects.filter(user=shopper).order_by("pk")
    Order.objects.filter(pk=unpaid.pk).update(pay_by=timezone.now() - timedelta(seconds=1))

    order_pay(order=paid, actor=shopper)
    order_pay(order=refunded, actor=shopper)
    order_refund(order=refunded, actor=staff, reason="arrived damaged")
    order_cancel(order=cancelled, actor=shopper, reason="cancelled by customer")
    assert orders_expire_unpaid() == 1

    def confirmed(order) -> str:
        return f"Your order #{order.pk} is confirmed: pay by {order.pay_by:%H:%M} UTC"

    assert sorted(message.subject for message in mails_to(shopper)) == sorted(
        [
            *map(confirmed, (paid, refunded, cancelled, unpaid)),
            f"Receipt for your order #{paid.pk}",
            f"Receipt for your order #{refunded.pk}",
            f"Your order #{refunded.pk} was refunded",
            f"Your order #{unpaid.pk} was cancelled",
        ]
    )
    by_subject = {message.subject: message.body for message in mails_to(shopper)}
    assert "Reason: arrived damaged" in by_subject[f"Your order #{refunded.pk} was refunded"]
    assert "cancelled: not paid in time" in by_subject[f"Your order #{unpaid.pk} was cancelled"]
    assert OrderEmail.objects.filter(sent_at__isnull=True).count() == 0


def test_a_task_run_again_mails_no_one_twice(order):
    again = tasks.order_emails_send.apply(args=[[order.pk], OrderEmail.Kind.CONFIRMED]).result

    assert again == 0
    assert len(mails_to(order.user)) == 1


def test_two_workers_sending_the_same_mail_at_the_same_moment_send_it_once(order):
    mail.outbox.clear()
    OrderEmail.objects.all().delete()

    sent = run_together(lambda i: tasks.order_emails_send.run([order.pk], OrderEmail.Kind.CONFIRMED), 4)

    assert sorted(sent) == [0, 0, 0, 1]
    assert len(mails_to(order.user)) == 1
    assert OrderEmail.objects.get(order=order).sent_at is not None


class RefusesTheSecond(EmailBackend):
    """A mail server that goes away as the second message is handed to it."""

    handed = []

    def send_messages(self, messages):
        RefusesTheSecond.handed.append(messages[0].to)
        if len(RefusesTheSecond.handed) == 2:
            raise smtplib.SMTPServerDisconnected("the mail server went away")
        return super().send_messages(messages)


def test_a_mail_the_server_refused_is_sent_by_the_retry_and_once(make_sale, settings):
    # Given two orders written in one batch, their mails not sent yet
    sale = make_sale(quantity=5)
    shoppers = [UserFactory(), UserFactory()]
    for shopper in shoppers:
        assert purchase(client_for(shopper), sale, key="k").status_code == 202
    order_writer_drain(sale_id=sale.pk, consumer="test")
    orders = sorted(Order.objects.filter(user__in=shoppers).values_list("pk", flat=True))
    OrderEmail.objects.all().delete()
    mail.outbox.clear()
    settings.EMAIL_BACKEND = "tests.orders.test_emails.RefusesTheSecond"
    RefusesTheSecond.handed.clear()

    # When the mail server goes away during the task, which Celery then retries, twice
    with pytest.raises(smtplib.SMTPServerDisconnected):
        tasks.order_emails_send.run(orders, OrderEmail.Kind.CONFIRMED)
    assert list(OrderEmail.objects.values_list("order_id", flat=True)) == orders[:1]  # the other's claim back
    retried = [tasks.order_emails_send.run(orders, OrderEmail.Kind.CONFIRMED) for _ in range(2)]

    # Then each shopper got their mail once
    assert retried == [1, 0]
    assert sorted(len(mails_to(shopper)) for shopper in shoppers) == [1, 1]
    assert OrderEmail.objects.filter(order__in=orders, sent_at__isnull=False).count() == 2


def test_make_runs_backend_writes_each_mail_in_a_file_of_its_own(order, settings, tmp_path):
    settings.EMAIL_BACKEND, settings.EMAIL_FILE_PATH = "core.mail.OneFilePerMessageBackend", str(tmp_path)
    OrderEmail.objects.all().delete()

    order_pay(order=order, actor=order.user)
    assert tasks.order_emails_send.run([order.pk], OrderEmail.Kind.CONFIRMED) == 1

    files = sorted(tmp_path.iterdir())
    subjects = sorted(email.message_from_bytes(path.read_bytes())["Subject"] for path in files)
    assert len(files) == 2 and all(path.suffix == ".eml" for path in files)
    assert subjects == sorted([f"Receipt for your order #{order.pk}", mail.outbox[0].subject])
