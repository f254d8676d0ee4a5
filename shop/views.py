import math

import redis
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from config.exceptions import DomainError, RateLimited
from limits.middleware import client_ip, too_many_requests_page
from orders.admission import purchase_admit
from orders.outcomes import PURCHASE_SENTENCES, purchase_sentence
from orders.waiting_room import waiting_room_join
from shop.forms import BuyForm
from shop.models import FlashSale
from shop.selectors import flash_sale_list, flash_sale_list_on_offer, flash_sale_state, product_list_active


def home(request):
    sales = [(sale, flash_sale_state(sale_id=sale.pk, sale=sale)) for sale in flash_sale_list_on_offer()]
    return render(request, "shop/home.html", {"products": product_list_active(), "flash_sales": sales})


def sale_detail(request, pk: int):
    sale = get_object_or_404(flash_sale_list(), pk=pk)
    now = timezone.now()
    return render(
        request,
        "shop/sale_detail.html",
        {
            "sale": sale,
            "state": flash_sale_state(sale_id=sale.pk, sale=sale),
            "started": now >= sale.starts_at,
            "form": BuyForm(limit=sale.per_user_limit),
            "sentences": PURCHASE_SENTENCES,
        },
    )


@never_cache
def sale_state(request, pk: int):
    """The sale's live state for its page's script: polled, so cheap (flash_sale_state)."""
    state = flash_sale_state(sale_id=pk)
    if state is None:
        raise Http404("No such sale.")
    return JsonResponse({**state.as_json(), "server_time": timezone.now().isoformat()})


@login_required
@require_POST
def sale_buy(request, pk: int):
    sale = get_object_or_404(FlashSale, pk=pk)
    form = BuyForm(request.POST, limit=sale.per_user_limit)
    if not form.is_valid():
        messages.error(request, " ".join(message for errors in form.errors.values() for message in errors))
        return redirect("shop:sale", pk=sale.pk)
    try:
        # Without the page's script no ticket comes with the form: the shopper's place is theirs anyway.
        ticket = (
            waiting_room_join(sale_id=sale.pk, user_id=request.user.pk).ticket if sale.waiting_room_opens_at else None
        )
        reservation_id = purchase_admit(
            sale_id=sale.pk,
            user_id=request.user.pk,
            queue_ticket=ticket,
            quantity=form.cleaned_data["quantity"],
            idempotency_key=form.cleaned_data["attempt"],
            limits=getattr(request, "purchase_limits", ()),
            address=client_ip(request),
        )
    except RateLimited as error:
        return too_many_requests_page(request, max(1, math.ceil(error.retry_after)))
    except DomainError as error:
        messages.error(request, purchase_sentence(error.code) if error.code in PURCHASE_SENTENCES else str(error))
        return redirect("shop:sale", pk=sale.pk)
    except redis.RedisError:  # The waiting room could not be asked.
        messages.error(request, purchase_sentence("unavailable"))
        return redirect("shop:sale", pk=sale.pk)
    return redirect("orders:purchase", reservation_id=reservation_id)
