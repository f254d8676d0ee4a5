"""The shop's URLs, with the purchase endpoint answering a constant (see constant_answer.py)."""

from django.urls import path

from config.urls import urlpatterns as shop_urlpatterns
from purchase.api.views import FlashSalePurchaseApi


class ConstantAnswerPurchaseApi(FlashSalePurchaseApi):
    admit = staticmethod(lambda **attempt: "constant-answer")


urlpatterns = [
    path("api/v1/flash-sales/<int:pk>/purchase/", ConstantAnswerPurchaseApi.as_view()),
    *shop_urlpatterns,
]
