"""Purchase blocks are published to Redis as one document (orders.blocks.purchase_blocks_publish:
read the blocks in force, then write the document). A block created while another publish (beat's
minute publish, another member of staff's change) has read the blocks but not yet written them."""

import pytest

from orders import blocks
from orders.blocks import block_list, purchase_blocks_publish
from orders.services import purchase_block_create
from tests.conftest import client_for, purchase
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_block_created_during_another_publish_holds(make_sale, staff, monkeypatch):
    sale = make_sale(quantity=5)
    shopper = UserFactory()
    real_write = blocks._document_write
    raced = []

    def block_created_before_the_write(document, stamp):
        """The document's write, which waits for a block to be created and published first."""
        if not raced:
            raced.append(True)
            purchase_block_create(actor=staff, account=shopper, reason="bot net")
        return real_write(document, stamp)

    monkeypatch.setattr(blocks, "_document_write", block_created_before_the_write)

    # When beat's publish reads the blocks in force (none), then a block is created and published,
    # then beat's publish writes the document it read
    purchase_blocks_publish()
    monkeypatch.undo()
    block_list.forget()  # any process, once PURCHASE_BLOCKS_REFRESH_SECONDS have passed

    # Then the new block holds
    response = purchase(client_for(shopper), sale, key="k")
    assert (response.status_code, response.json().get("code")) == (403, "blocked"), (
        f"{response.status_code} {response.json()}; the document in Redis: {blocks.redis_client().get(blocks.KEY)}"
    )
