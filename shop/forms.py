from django import forms
from django.conf import settings
from django.utils import timezone

from shop.models import Wave


class BuyForm(forms.Form):
    """One purchase attempt; `attempt` is its Idempotency-Key, fixed when the page was served
    (shop/pages.py fills in a fresh one), so a double click or a resubmitted form buys once."""

    attempt = forms.RegexField(r"^[A-Za-z0-9-]{1,64}\Z", widget=forms.HiddenInput)

    def __init__(self, *args, limit: int, **kwargs):
        super().__init__(*args, **kwargs)
        # As many as the shopper may hold, but never more than one purchase may ask for (the API's cap).
        most = min(limit, settings.PURCHASE_MAX_QUANTITY)
        self.fields["quantity"] = forms.IntegerField(min_value=1, max_value=most, initial=1)


class WavesField(forms.CharField):
    """A sale's waves, one per line: `2026-12-24 20:00, 50` (a time in the shop's time zone, then
    the units it releases). Empty: every unit at the start."""

    widget = forms.Textarea(attrs={"rows": 4, "placeholder": "2026-12-24 20:00, 50\n2026-12-24 20:10, 50"})

    def to_python(self, value) -> list[Wave]:
        waves = []
        moment = forms.DateTimeField()
        for number, line in enumerate(filter(None, (line.strip() for line in (value or "").splitlines())), 1):
            at, _, units = line.rpartition(",")
            try:
                waves.append(Wave(moment.clean(at.strip()), int(units)))
            except (forms.ValidationError, ValueError) as error:
                raise forms.ValidationError(
                    f"Line {number}: write a time, a comma, and the units, as in the example."
                ) from error
        return waves

    def prepare_value(self, value) -> str:
        if isinstance(value, list):
            return "\n".join(f"{timezone.localtime(wave.at):%Y-%m-%d %H:%M:%S}, {wave.units}" for wave in value)
        return value
