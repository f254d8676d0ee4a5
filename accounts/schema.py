from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class StatelessJWTScheme(SimpleJWTScheme):
    """The same bearer token, read without loading the user and verified once (the purchase)."""

    target_class = "core.api.authentication.BearerTokenAuthentication"
    name = "jwtStatelessAuth"
    priority = 1
