"""The settings read on every purchase and every poll, as plain attributes.

Each read of `django.conf.settings` is a Python call (LazyObject.__getattribute__), some 0.4 µs,
and a purchase reads fifteen. `hot_settings` keeps what it was asked for and forgets a setting
when it changes (`setting_changed`: override_settings, the tests' `settings` fixture); it is
for the request's hot path only, everything else reads `settings`.
"""

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


class HotSettings:
    def __getattr__(self, name: str):
        value = getattr(settings, name)
        self.__dict__[name] = value  # Read as a plain attribute from now on.
        return value


hot_settings = HotSettings()


@receiver(setting_changed)
def _forget(setting: str, **kwargs) -> None:
    hot_settings.__dict__.pop(setting, None)
