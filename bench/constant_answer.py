"""Settings for phase a of the benchmark: the shop as it is, except that the purchase endpoint
answers a constant right after authentication, rate limits and validation (no admission).

    DJANGO_SETTINGS_MODULE=bench.constant_answer gunicorn config.wsgi
"""

from config.settings.base import *  # noqa: F403

ROOT_URLCONF = "bench.constant_urls"
