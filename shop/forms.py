import uuid

from django import forms
from django.conf import settings


class BuyForm(forms.Form):
    """One purchase attempt; `attempt` is its Idempotency-Key, fixed when the page was drawn,
    so a double click or a resubmitted form buys once."""

    attempt = forms.RegexField(r"^[A-Za-z0-9-]{1,64}\Z", widget=forms.HiddenInput)

    def __init__(self, *args, limit: int, **kwargs):
        super().__init__(*args, **kwargs)
        # As many as the shopper may hold, but never more than one purchase may ask for (the API's cap).
        most = min(limit, settings.PURCHASE_MAX_QUANTITY)
        self.fields["quantity"] = forms.IntegerField(min_value=1, max_value=most, initial=1)
        self.fields["attempt"].initial = uuid.uuid4().hex
