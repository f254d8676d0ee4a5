"""hot_settings (core/conf.py): the hot path's copy of the settings follows every change."""

from django.conf import settings as django_settings
from django.test import override_settings

from core.conf import hot_settings


def test_hot_settings_follow_a_setting_changed_and_restored(settings):
    before = hot_settings.PURCHASE_ADMISSION
    assert before == django_settings.PURCHASE_ADMISSION

    settings.PURCHASE_ADMISSION = "database"
    assert hot_settings.PURCHASE_ADMISSION == "database"

    with override_settings(PURCHASE_ADMISSION="redis", RATE_LIMITS={"page": {"ip": (1, 1)}}):
        assert (hot_settings.PURCHASE_ADMISSION, hot_settings.RATE_LIMITS) == ("redis", {"page": {"ip": (1, 1)}})
    assert hot_settings.PURCHASE_ADMISSION == "database"
    assert hot_settings.RATE_LIMITS == django_settings.RATE_LIMITS


def test_hot_settings_keep_what_they_read():
    hot_settings.SECRET_KEY  # noqa: B018 (read once)

    assert "SECRET_KEY" in vars(hot_settings)
