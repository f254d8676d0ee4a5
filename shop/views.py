from django.shortcuts import render

from shop.selectors import flash_sale_list_on_offer, product_list_active


def home(request):
    return render(
        request,
        "shop/home.html",
        {"products": product_list_active(), "flash_sales": flash_sale_list_on_offer()},
    )
