from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self):
        from accounts import schema, sessions  # noqa: F401 - register the OpenAPI scheme, the sign-in card
