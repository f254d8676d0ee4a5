from django import forms

from inventory.models import Stock

MAX_UNITS = 1_000_000


class StockThresholdForm(forms.ModelForm):
    """The admin's stock form: only the threshold is edited, against the version read."""

    expected_version = forms.IntegerField(widget=forms.HiddenInput)

    class Meta:
        model = Stock
        fields = ["low_stock_threshold"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["expected_version"].initial = self.instance.version


class StockMoveForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=MAX_UNITS)
    reason = forms.CharField(max_length=255)
    # The version the clerk saw: a second submission of the same confirmation is a conflict.
    expected_version = forms.IntegerField(widget=forms.HiddenInput)


class StockAdjustForm(forms.Form):
    on_hand = forms.IntegerField(label="Counted on hand", min_value=0, max_value=MAX_UNITS)
    reason = forms.CharField(max_length=255)
    expected_version = forms.IntegerField(widget=forms.HiddenInput)
