"""Prices as money: an amount in the shop's currency, written as the shop's locale writes it."""

import functools
from decimal import Decimal

from babel import Locale
from babel.numbers import format_currency
from django import template
from django.conf import settings

register = template.Library()


@functools.cache
def _locale(name: str) -> Locale:
    return Locale.parse(name)


@register.filter
def money(amount: Decimal | int | None) -> str:
    """`€19.90` for 19.9 in a shop that sells in euros; nothing for no amount."""
    if amount is None or amount == "":
        return ""
    return format_currency(amount, settings.SHOP_CURRENCY, locale=_locale(settings.SHOP_LOCALE))
