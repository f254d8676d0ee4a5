"""The storefront's purchase: the sale page's Buy form (without the page's script too) and the
page that follows one purchase to its order."""

import math

import redis
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.addresses import client_ip
from core.exceptions import DomainError, RateLimited
from limits.middleware import too_many_requests_page
from orders.selectors import order_list_visible_to
from purchase.admission import purchase_admit
from purchase.outcomes import PURCHASE_SENTENCES, purchase_sentence
from purchase.results import purchase_result
from purchase.waiting_room import waiting_room_join
from shop.forms import BuyForm
from shop.models import FlashSale


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
    return redirect("purchase:status", reservation_id=reservation_id)


@login_required
def purchase_status(request, reservation_id: str):
    result = purchase_result(reservation_id=reservation_id, user=request.user)
    if result is None:
        raise Http404("No such purchase.")
    order = order_list_visible_to(user=request.user).filter(pk=result.order_id).first() if result.order_id else None
    return render(request, "purchase/status.html", {"result": result, "order": order})
