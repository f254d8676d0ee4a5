from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from config.exceptions import DomainError
from orders.admission import purchase_admit
from shop.forms import BuyForm
from shop.models import FlashSale
from shop.selectors import flash_sale_list, flash_sale_list_on_offer, flash_sale_remaining_now, product_list_active


def home(request):
    return render(
        request,
        "shop/home.html",
        {"products": product_list_active(), "flash_sales": flash_sale_list_on_offer()},
    )


def sale_detail(request, pk: int):
    sale = get_object_or_404(flash_sale_list(), pk=pk)
    return render(
        request,
        "shop/sale_detail.html",
        {"sale": sale, "remaining": flash_sale_remaining_now(sale=sale), "form": BuyForm(limit=sale.per_user_limit)},
    )


@login_required
@require_POST
def sale_buy(request, pk: int):
    sale = get_object_or_404(FlashSale, pk=pk)
    form = BuyForm(request.POST, limit=sale.per_user_limit)
    if not form.is_valid():
        messages.error(request, " ".join(message for errors in form.errors.values() for message in errors))
        return redirect("shop:sale", pk=sale.pk)
    try:
        reservation_id = purchase_admit(
            sale_id=sale.pk,
            user_id=request.user.pk,
            quantity=form.cleaned_data["quantity"],
            idempotency_key=form.cleaned_data["attempt"],
            limits=getattr(request, "purchase_limits", ()),
        )
    except DomainError as error:
        messages.error(request, str(error))
        return redirect("shop:sale", pk=sale.pk)
    return redirect("orders:purchase", reservation_id=reservation_id)
