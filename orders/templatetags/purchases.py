from django import template

from orders.outcomes import purchase_sentence

register = template.Library()


@register.filter
def reason_sentence(reason: str) -> str:
    """`{{ result.reason|reason_sentence }}`: the shopper's sentence for a refusal."""
    return purchase_sentence(reason)
