from django.apps import AppConfig


class LimitsConfig(AppConfig):
    """Spike protection: rate limiting and the Redis circuit breaker."""

    name = "limits"
