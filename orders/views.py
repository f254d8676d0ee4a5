from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.exceptions import DomainError
from orders.selectors import order_list_visible_to
from orders.services import order_cancel, order_pay


@login_required
def order_list(request):
    orders = order_list_visible_to(user=request.user).filter(user=request.user).select_related("sku__product")
    return render(request, "orders/order_list.html", {"orders": orders[:100]})


@login_required
def order_detail(request, pk: int):
    order = get_object_or_404(
        order_list_visible_to(user=request.user).select_related("sku__product", "flash_sale"),
        pk=pk,
        user=request.user,
    )
    return render(request, "orders/order_detail.html", {"order": order, "transitions": order.transitions.all()})


def _own_order(request, pk: int):
    return get_object_or_404(order_list_visible_to(user=request.user), pk=pk, user=request.user)


@login_required
@require_POST
def order_pay_view(request, pk: int):
    try:
        order_pay(order=_own_order(request, pk), actor=request.user)
    except DomainError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Order #{pk} is paid. Thank you!")
    return redirect(_back_to(request, pk))


@login_required
@require_POST
def order_cancel_view(request, pk: int):
    try:
        order_cancel(order=_own_order(request, pk), actor=request.user, reason="cancelled by customer")
    except DomainError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Order #{pk} is cancelled.")
    return redirect(_back_to(request, pk))


def _back_to(request, pk: int) -> str:
    """Back where the shopper was: the order's page or the list (the form says which)."""
    return reverse("orders:detail", args=[pk]) if request.POST.get("from") == "detail" else reverse("orders:list")
