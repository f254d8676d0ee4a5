"""Purchase blocks: staff keep an account or a network from buying in one sale or in all; the
purchase is refused 403 `blocked` before the admission script, without a query."""

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone

from accounts.roles import roles_apply
from orders.blocks import KEY, BlockList
from orders.exceptions import InvalidBlock
from orders.invariants import check_invariants
from orders.models import PurchaseBlock
from orders.services import purchase_block_create, purchase_block_lift
from orders.tasks import purchase_blocks_publish
from purchase.admission import purchase_admit
from purchase.exceptions import PurchaseBlocked
from tests.conftest import client_for, purchase
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def buy(sale, user, key: str, address: str = "198.51.100.20"):
    return client_for(user).post(
        f"/api/v1/flash-sales/{sale.pk}/purchase/",
        {"quantity": 1},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
        REMOTE_ADDR=address,
    )


def test_a_blocked_account_is_refused_in_its_sale_without_a_query_or_the_admission_script(
    make_sale, staff, admissions, django_assert_num_queries
):
    sale, other_sale = make_sale(quantity=5), make_sale(quantity=5)
    shopper = UserFactory()
    purchase_block_create(actor=staff, account=shopper, flash_sale=sale, reason="resold every unit last drop")

    with django_assert_num_queries(0), pytest.raises(PurchaseBlocked):
        purchase_admit(sale_id=sale.pk, user_id=shopper.pk, quantity=1, idempotency_key="k")
    response = buy(sale, shopper, "k2")

    assert (response.status_code, response.json()["code"]) == (403, "blocked")
    assert admissions == []
    assert buy(other_sale, shopper, "k3").status_code == 202  # only that sale
    assert buy(sale, UserFactory(), "k4").status_code == 202  # only that shopper
    assert check_invariants().ok


def test_a_block_from_every_sale_holds_in_each(make_sale, staff):
    sales = [make_sale(quantity=5), make_sale(quantity=5)]
    shopper = UserFactory()
    purchase_block_create(actor=staff, account=shopper, reason="chargebacks")

    assert [buy(sale, shopper, f"k{sale.pk}").status_code for sale in sales] == [403, 403]


def test_a_network_block_refuses_every_address_in_it(make_sale, staff, admissions):
    sale = make_sale(quantity=5, limit=5)
    purchase_block_create(actor=staff, network="203.0.113.77/24", flash_sale=sale, reason="a bot farm")
    shopper = UserFactory()

    # (an IPv4 peer seen through an IPv6 socket is the same peer)
    inside = [buy(sale, shopper, f"in-{n}", address=address) for n, address in enumerate(
        ["203.0.113.1", "203.0.113.200", "::ffff:203.0.113.9"]
    )]  # fmt: skip
    outside = buy(sale, shopper, "out", address="203.0.114.1")

    assert [response.status_code for response in inside] == [403, 403, 403]
    assert outside.status_code == 202
    assert len(admissions) == 1
    assert PurchaseBlock.objects.get().network == "203.0.113.0/24"


def test_a_block_ends_at_its_expiry_or_when_lifted(make_sale, staff):
    sale = make_sale(quantity=5)
    short, lifted = UserFactory(), UserFactory()
    purchase_block_create(
        actor=staff, account=short, reason="cool down", expires_at=timezone.now() + timedelta(seconds=1)
    )
    block = purchase_block_create(actor=staff, account=lifted, reason="mistaken identity")
    assert buy(sale, short, "a").status_code == buy(sale, lifted, "b").status_code == 403

    assert purchase_block_lift(block=block, actor=staff) is True
    assert purchase_block_lift(block=block, actor=staff) is False  # once
    time.sleep(1.1)

    assert buy(sale, short, "c").status_code == 202
    assert buy(sale, lifted, "d").status_code == 202
    block.refresh_from_db()
    assert (block.lifted_by, block.reason) == (staff, "mistaken identity")  # the record stays


def test_another_process_learns_of_a_block_through_redis_and_beat_brings_it_back(staff, redis_client, settings):
    settings.PURCHASE_BLOCKS_REFRESH_SECONDS = 0
    shopper = UserFactory()
    purchase_block_create(actor=staff, account=shopper, reason="bot")
    elsewhere = BlockList()  # another web process: it knows only what Redis says

    assert elsewhere.blocks(sale_id=1, user_id=shopper.pk, address=None)
    redis_client.delete(KEY)  # Redis lost it: the process keeps what it knew ...
    assert elsewhere.blocks(sale_id=1, user_id=shopper.pk, address=None)
    assert not BlockList().blocks(sale_id=1, user_id=shopper.pk, address=None)  # ... a new one cannot know

    assert purchase_blocks_publish() == 1  # the beat task
    assert BlockList().blocks(sale_id=1, user_id=shopper.pk, address=None)
    assert not BlockList().blocks(sale_id=1, user_id=UserFactory().pk, address="not an address")


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({}, "Block either an account or a network"),
        ({"network": "10.0.0.0/8", "with_account": True}, "Block either an account or a network"),
        ({"network": "10.0.0.0/33"}, "is not an address or a network"),
        ({"network": "10.0.0.1", "reason": "  "}, "a reason is required"),
        ({"network": "10.0.0.1", "expires_at": -60}, "The expiry must be in the future"),
    ],
)
def test_a_block_must_name_one_account_or_network_a_reason_and_a_future_expiry(staff, terms, message):
    terms = dict(terms)
    account = UserFactory() if terms.pop("with_account", False) else None
    expires_in = terms.pop("expires_at", None)
    expires_at = timezone.now() + timedelta(seconds=expires_in) if expires_in else None

    with pytest.raises(InvalidBlock, match=message):
        purchase_block_create(
            actor=staff, account=account, expires_at=expires_at, **{"reason": "why", "network": "", **terms}
        )
    assert not PurchaseBlock.objects.exists()


def test_staff_block_and_lift_in_the_admin_and_the_record_stays(make_sale, staff, client):
    roles_apply(Group, Permission)  # a transactional test's flush removed the migration's groups
    sale = make_sale(quantity=5)
    support = StaffFactory()
    support.groups.add(Group.objects.get(name="support"))
    client.force_login(support)

    invalid = client.post(
        reverse("admin:orders_purchaseblock_add"), {"network": "300.1.1.1", "reason": "farm"}
    ).content.decode()
    assert "&#x27;300.1.1.1&#x27; is not an address or a network in CIDR form." in invalid
    response = client.post(
        reverse("admin:orders_purchaseblock_add"),
        {"network": "2001:db8::1/48", "flash_sale": sale.pk, "reason": "a bot farm"},
    )
    assert response.status_code == 302
    block = PurchaseBlock.objects.get()
    assert (block.network, block.flash_sale, block.created_by) == ("2001:db8::/48", sale, support)
    assert buy(sale, UserFactory(), "k", address="2001:db8:0:0:1::5").status_code == 403

    listed = client.get(reverse("admin:orders_purchaseblock_changelist"), {"in_force": "yes", "q": "farm"})
    assert "2001:db8::/48" in listed.content.decode()
    assert client.get(reverse("admin:orders_purchaseblock_delete", args=[block.pk])).status_code == 403
    action = {"action": "lift", "_selected_action": [block.pk]}
    asked = client.post(reverse("admin:orders_purchaseblock_changelist"), action)
    assert "Lift these blocks?" in asked.content.decode()
    client.post(reverse("admin:orders_purchaseblock_changelist"), {**action, "confirmed": "yes"})
    block.refresh_from_db()
    assert block.lifted_by == support
    assert buy(sale, UserFactory(), "k2", address="2001:db8::5").status_code == 202

    clerk = StaffFactory()
    clerk.groups.add(Group.objects.get(name="stock clerk"))
    client.force_login(clerk)
    assert client.get(reverse("admin:orders_purchaseblock_changelist")).status_code == 403


def test_staff_block_shoppers_from_every_sale_from_the_user_list(make_sale, staff, client):
    sale = make_sale(quantity=5)
    shopper = UserFactory()
    client.force_login(staff)
    action = {"action": "block_from_every_sale", "_selected_action": [shopper.pk]}

    asked = client.post(reverse("admin:accounts_user_changelist"), action).content.decode()
    assert "Keep these accounts from buying in every sale" in asked
    client.post(reverse("admin:accounts_user_changelist"), {**action, "confirmed": "yes", "reason": "scalper"})

    block = PurchaseBlock.objects.get()
    assert (block.account, block.flash_sale, block.reason) == (shopper, None, "scalper")
    assert purchase(client_for(shopper), sale, key="k").json()["code"] == "blocked"
