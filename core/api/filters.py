import django_filters


class StrictFilterSet(django_filters.FilterSet):
    """A filter parameter sent empty (`?status=`) is a 400, not silently "no filter"."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name in self.filters:
            if name in self.data and self.data.get(name) == "":
                self.form.add_error(name, "Give a value, or leave the parameter out.")
                valid = False
        return valid


class TrueFalseFilter(django_filters.ChoiceFilter):
    """`?name=true` or `?name=false`; anything else is a 400."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, choices=[("true", "true"), ("false", "false")], **kwargs)
