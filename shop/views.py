import functools
import json

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone

from shop.forms import BuyForm
from shop.pages import AT_LIMIT, ATTEMPT, HELD, HOLDING, PAGE_SECONDS, crowd_page
from shop.selectors import (
    SaleState,
    flash_sale_list,
    flash_sale_list_on_offer,
    flash_sale_state,
    flash_sale_units_held,
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
            "held": HELD,
            "holding": HOLDING,
            "at_limit": AT_LIMIT,
            "pay_minutes": settings.ORDER_PAYMENT_TIMEOUT // 60,
        }

    def personal(card: dict) -> dict[str, str]:
        state = flash_sale_state(sale_id=pk)
        held = None
        if state is not None and "id" in card:  # A card from before it named the shopper: unknown.
            held = flash_sale_units_held(state=state, sale_id=pk, user_id=card["id"])
        if held is None:
            return {HELD: "", HOLDING: "", AT_LIMIT: ""}
        limit = state.per_user_limit
        return {HELD: str(held), HOLDING: holding_sentence(held, limit), AT_LIMIT: " disabled" * (held >= limit)}

    return crowd_page(request, "shop/sale_detail.html", (pk,), context, personal)


def holding_sentence(held: int, limit: int) -> str:
    """What the sale page tells a shopper of the units they hold against the sale's limit."""
    if held <= 0:
        return ""
    if held >= limit:
        return f"You hold {held} of the {limit} allowed per shopper: you cannot buy more in this sale."
    return f"You hold {held} of the {limit} allowed per shopper: you may buy {limit - held} more."


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
