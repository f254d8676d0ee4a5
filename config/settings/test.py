"""Settings for the test suite: real PostgreSQL and Redis, quick password hashing."""

import os

# A developer's .env does not reach the tests.
os.environ.setdefault("ENV_FILE", os.devnull)
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-that-is-long-enough-for-hs256")
os.environ.setdefault("HTTPS", "0")
os.environ.setdefault("LOG_FORMAT", "plain")
# No rate limits unless a test sets RATE_LIMITS: most tests send many requests quickly.
for variable in ("RATE_LIMIT_USER_RATE", "RATE_LIMIT_IP_RATE", "RATE_LIMIT_LOGIN_RATE", "RATE_LIMIT_HEALTH_RATE"):
    os.environ.setdefault(variable, "0")

from .base import *  # noqa: E402, F403
from .base import DATABASES, STORAGES, env  # noqa: E402

# A second alias on the test database, as a replica would be: the router's tests turn it on.
DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
ALLOWED_HOSTS = ["*"]
# Serve static files from the source folders; tests do not run collectstatic.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
# In-process by default; tests that claim something about workers start real ones.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
# Tests drain right after they admit; the one test of lingering sets it.
ORDER_WRITER_LINGER_MS = 0
# A proof of work a test (and the browser on a slow machine) solves quickly.
PURCHASE_PASS_CHALLENGE_MAX_NUMBER = 2_000
