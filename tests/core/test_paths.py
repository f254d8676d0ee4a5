"""The paths the rate limiter and the purchase door know before any URL is resolved are
the ones the URLconfs route."""

from django.urls import reverse

from core.paths import CROWD_PAGE_PATH, PURCHASE_API_PATH, PURCHASE_FORM_PATH


def test_the_purchase_paths_are_the_routed_ones():
    assert PURCHASE_API_PATH.match(reverse("flash-sale-purchase", args=[42]))["pk"] == "42"
    assert PURCHASE_FORM_PATH.match(reverse("purchase:buy", args=[42]))["pk"] == "42"
    assert PURCHASE_API_PATH.match("/api/v1/flash-sales/42/pass/") is None


def test_the_crowd_pages_are_the_routed_ones():
    for page in (reverse("shop:home"), reverse("shop:sale", args=[42]), reverse("shop:state", args=[42])):
        assert CROWD_PAGE_PATH.match(page), page
    for other in ("/sales/42/buy/", "/orders/", "/sales/", "/sales/42/state/x"):
        assert CROWD_PAGE_PATH.match(other) is None, other
