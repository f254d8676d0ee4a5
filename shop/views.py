import functools
import json

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone

from shop.forms import BuyForm
from shop.pages import ATTEMPT, PAGE_SECONDS, crowd_page
from shop.selectors import (
    SaleState,
    flash_sale_list,
    flash_sale_list_on_offer,
    flash_sale_state,
    product_list_active,
)


def home(request):
    def context() -> dict:
        sales = [(sale, flash_sale_state(sale_id=sale.pk, sale=sale)) for sale in flash_sale_list_on_offer()]
        return {"products": product_list_active(), "flash_sales": sales}

    return crowd_page(request, "shop/home.html", (), context)


def sale_detail(request, pk: int):
    def context() -> dict:
        sale = get_object_or_404(flash_sale_list(), pk=pk)
        return {
            "sale": sale,
            "state": flash_sale_state(sale_id=sale.pk, sale=sale),
            "started": timezone.now() >= sale.starts_at,
            "form": BuyForm(limit=sale.per_user_limit, initial={"attempt": ATTEMPT}),
        }

    return crowd_page(request, "shop/sale_detail.html", (pk,), context)


def sale_state(request, pk: int):
    """The sale's live state for its page's script (the state door, shop/door.py, serves it on
    the usual path)."""
    state = flash_sale_state(sale_id=pk)
    if state is None:
        raise Http404("No such sale.")
    response = HttpResponse(state_body(state), content_type="application/json")
    response["Cache-Control"] = STATE_CACHE_CONTROL
    return response


# A proxy may hold the state for a second: the page's clock keeps the newest of the times it reads.
STATE_CACHE_CONTROL = f"public, max-age={PAGE_SECONDS:.0f}"


def state_body(state: SaleState) -> bytes:
    """The state as its page's script reads it: polled every second by each open page, so served
    from memory (flash_sale_state) and encoded once, with the server's clock added."""
    return state_json(state, state.badge) + b', "server_time": "' + timezone.now().isoformat().encode() + b'"}'


@functools.lru_cache(maxsize=256)
def state_json(state: SaleState, badge: str) -> bytes:
    """The state as JSON, with its badge of the moment (which the clock turns), its closing
    brace left off."""
    return json.dumps({**state.as_json(), "badge": badge}).encode()[:-1]
