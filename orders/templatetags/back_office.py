from django import template
from django.utils import timezone

from orders.selectors import BackOfficeSummary, back_office_summary

register = template.Library()


@register.simple_tag
def back_office_dashboard() -> BackOfficeSummary:
    return back_office_summary(now=timezone.now())
