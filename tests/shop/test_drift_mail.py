"""A drift that reconciliation finds and repairs is e-mailed to the sales staff, once."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import mail

from accounts.roles import roles_apply
from core.redis import redis_client
from inventory import redis_sales
from shop.models import SaleDrift
from shop.tasks import flash_sales_reconcile
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_repaired_drift_is_mailed_once_to_the_staff_who_run_sales(make_sale, staff):
    roles_apply(Group, Permission)
    manager = StaffFactory(email="manager@example.com")
    manager.groups.add(Group.objects.get(name="sales manager"))
    clerk = StaffFactory(email="clerk@example.com")
    clerk.groups.add(Group.objects.get(name="stock clerk"))
    sale = make_sale(quantity=5)
    redis_client().set(f"fs:{{{sale.pk}}}:remaining", 99)  # Redis lost track

    assert flash_sales_reconcile() == 1
    flash_sales_reconcile()  # nothing new: no second mail

    assert redis_sales.sale_remaining(sale.pk) == 5
    [message] = mail.outbox
    assert sorted(message.to) == sorted(["manager@example.com", staff.email])  # the superuser too; not the clerk
    assert f"flash sale #{sale.pk}" in message.subject and "Redis said 99 left" in message.body
    assert SaleDrift.objects.get(flash_sale=sale).notified_at is not None
