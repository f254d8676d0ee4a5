import django_filters


class TrueFalseFilter(django_filters.ChoiceFilter):
    """`?name=true` or `?name=false`; anything else is a 400, not silently ignored."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, choices=[("true", "true"), ("false", "false")], **kwargs)
