from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from shop.forms import BuyForm
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
        },
    )


@never_cache
def sale_state(request, pk: int):
    """The sale's live state for its page's script: polled, so cheap (flash_sale_state)."""
    state = flash_sale_state(sale_id=pk)
    if state is None:
        raise Http404("No such sale.")
    return JsonResponse({**state.as_json(), "server_time": timezone.now().isoformat()})
