from django import template

from purchase.outcomes import PURCHASE_SENTENCES, purchase_sentence

register = template.Library()


@register.filter
def reason_sentence(reason: str) -> str:
    """`{{ result.reason|reason_sentence }}`: the shopper's sentence for a refusal."""
    return purchase_sentence(reason)


@register.simple_tag
def purchase_sentences() -> dict[str, str]:
    """`{% purchase_sentences as sentences %}`: every sentence, for a page's script."""
    return PURCHASE_SENTENCES
