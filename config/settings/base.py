"""Settings for every environment, read from the process environment.

Every variable the shop reads is listed in the README with its default. Production secrets
have no default: with DEBUG off, a missing SECRET_KEY stops the start-up with a clear error.
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A .env file beside manage.py is read when present (.env.example lists every variable); what the
# process environment already holds wins over it. ENV_FILE names another file.
ENV_FILE = os.environ.get("ENV_FILE", str(BASE_DIR / ".env"))
if os.path.isfile(ENV_FILE):
    environ.Env.read_env(ENV_FILE)

# --- Core ----------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is not set. Set it in the environment (DEBUG=1 allows a throwaway key).")
    SECRET_KEY = "insecure-development-key-only-used-with-debug-on"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "core",
    "accounts",
    "limits",
    "shop",
    "inventory",
    "orders",
    "purchase",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Outside the rate limiter, so that its 429 page cannot be framed either.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.sessions.ShopperCardMiddleware",
    "limits.middleware.RateLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.server_time",
            ],
            # `|money` on every page and e-mail: prices are written one way.
            "builtins": ["core.templatetags.money"],
        },
    },
]

# --- Database ------------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/shop")}
# The purchase path must not run inside a request-wide transaction: services open their own.
# The same PostgreSQL driver, with query counts and latencies exported to /metrics.
DATABASES["default"]["ENGINE"] = "django_prometheus.db.backends.postgresql"
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int("DATABASE_CONNECT_TIMEOUT", default=3)
# Behind PgBouncer in transaction mode a cursor cannot outlive its transaction: no server-side
# cursors (querysets' .iterator() then fetches through a client-side cursor).
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool("DATABASE_PGBOUNCER", default=False)
# A read replica serves the catalog (core/routers.py); every decision stays on the primary.
if DATABASE_REPLICA_URL := env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = {**DATABASES["default"], **env.db_url_config(DATABASE_REPLICA_URL)}
    DATABASES["replica"]["ENGINE"] = DATABASES["default"]["ENGINE"]
DATABASE_ROUTERS = ["core.routers.ReplicaRouter"] if "replica" in DATABASES else []

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and cache -----------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=0.5)
# REDIS_URL names any node of a Redis Cluster: every Redis user of the shop goes through
# redis-py's RedisCluster (core/redis.py), the cache included. Celery's broker cannot be a
# cluster: CELERY_BROKER_URL must then name a plain Redis or RabbitMQ.
REDIS_CLUSTER = env.bool("REDIS_CLUSTER", default=False)

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
        },
        "KEY_PREFIX": "cache",
    }
}
if REDIS_CLUSTER:
    CACHES["default"] = {"BACKEND": "core.cache.RedisClusterCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "cache"}
# Sentinel ("host:port,host:port"): every Redis user (the sale layer, the cache, Celery's Redis
# broker) asks the sentinels which server is the primary of REDIS_SENTINEL_MASTER, and again
# after a failover. REDIS_URL then gives only the database number.
REDIS_SENTINELS = [
    (host, int(port)) for host, port in (address.rsplit(":", 1) for address in env.list("REDIS_SENTINELS", default=[]))
]
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="mymaster")
if REDIS_SENTINELS:
    CACHES["default"]["LOCATION"] = f"redis://{REDIS_SENTINEL_MASTER}/{urlparse(REDIS_URL).path.lstrip('/') or 0}"
    CACHES["default"]["OPTIONS"] |= {
        "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
        "SENTINELS": REDIS_SENTINELS,
    }

# --- Celery --------------------------------------------------------------------------------

if REDIS_CLUSTER and "CELERY_BROKER_URL" not in os.environ:
    raise ImproperlyConfigured("With REDIS_CLUSTER=1, set CELERY_BROKER_URL to a plain Redis or RabbitMQ.")
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL",
    default=";".join(f"sentinel://{host}:{port}" for host, port in REDIS_SENTINELS) or REDIS_URL,
)
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"master_name": REDIS_SENTINEL_MASTER} if CELERY_BROKER_URL.startswith("sentinel") else {}
)
CELERY_RESULT_BACKEND = None
# Messages are acknowledged when a worker takes them, not after the task. With kombu's Redis
# transport, an acknowledgement that fails because the broker is away holds its prefetch slot
# for good: two tasks ending during a broker outage left a worker that never consumed again.
# No task here needs the message to outlive its worker: the order writer's work waits in the
# sale's stream (the sweep finds it), and beat sends the periodic tasks again. The stock alert
# e-mail, which has no such net, is acknowledged late on its own (inventory/tasks.py).
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker outage of any length is waited out, never a reason for the worker to exit.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Remote control (`celery inspect`) needs fan-out queues, which kombu's Redis transport fails to
# clean up while reconnecting after a broker outage; on with CELERY_WORKER_REMOTE_CONTROL=1.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = env.bool("CELERY_WORKER_REMOTE_CONTROL", default=False)
# Workers log through Django's LOGGING: JSON lines with the request id, like the web.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "flash-sales-advance": {"task": "purchase.tasks.flash_sales_advance", "schedule": 5.0},
    "order-writer-sweep": {"task": "orders.tasks.order_writer_sweep", "schedule": 3.0},
    "orders-expire-unpaid": {"task": "orders.tasks.orders_expire_unpaid", "schedule": 10.0},
    "payments-complete-stale": {"task": "orders.tasks.payments_complete_stale", "schedule": 30.0},
    "flash-sales-reconcile": {"task": "shop.tasks.flash_sales_reconcile", "schedule": 60.0},
    "purchase-blocks-publish": {"task": "orders.tasks.purchase_blocks_publish", "schedule": 60.0},
    "waiting-rooms-record": {"task": "orders.tasks.waiting_rooms_record", "schedule": 5.0},
}

# --- Auth and passwords --------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "shop:home"
LOGOUT_REDIRECT_URL = "shop:home"

# Sessions live in the cache and are written through to the database: the rate limiter reads
# the session's user on every request without a query.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# --- Internationalisation ------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files --------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Files a browser asks for at the site's root (/favicon.ico), served by WhiteNoise.
WHITENOISE_ROOT = BASE_DIR / "static" / "root"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security ------------------------------------------------------------------------------

# HTTPS defaults to on outside DEBUG, so a production deployment is safe unless it opts out;
# `make run` serves plain HTTP on this machine and sets HTTPS=0.
HTTPS = env.bool("HTTPS", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", False) else None
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Request bodies: the API takes small JSON documents; anything larger is refused with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=64 * 1024)

# --- REST API ------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    "PAGE_SIZE": 20,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "UPDATE_LAST_LOGIN": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Flash-sale shop API",
    "DESCRIPTION": "REST API v1 of the flash-sale shop.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs' scripts and styles from the shop's own static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.schema.add_error_responses",
    ],
}

# --- Shop ----------------------------------------------------------------------------------

# --- Spike protection ------------------------------------------------------------------------

# Requests per second and bucket size for each limit; 0 turns that limit off.
RATE_LIMIT_USER_RATE = env.float("RATE_LIMIT_USER_RATE", default=5.0)
RATE_LIMIT_USER_BURST = env.int("RATE_LIMIT_USER_BURST", default=10)
RATE_LIMIT_IP_RATE = env.float("RATE_LIMIT_IP_RATE", default=50.0)
RATE_LIMIT_IP_BURST = env.int("RATE_LIMIT_IP_BURST", default=100)
RATE_LIMIT_LOGIN_RATE = env.float("RATE_LIMIT_LOGIN_RATE", default=0.2)
RATE_LIMIT_LOGIN_BURST = env.int("RATE_LIMIT_LOGIN_BURST", default=5)
RATE_LIMIT_PASS_PER_MINUTE = env.int("RATE_LIMIT_PASS_PER_MINUTE", default=3)
RATE_LIMIT_HEALTH_RATE = env.float("RATE_LIMIT_HEALTH_RATE", default=5.0)
RATE_LIMIT_HEALTH_BURST = env.int("RATE_LIMIT_HEALTH_BURST", default=20)
# Reads are cheap and come in bursts (pages, polling a reservation): four times the budget.
RATE_LIMITS = {
    "purchase": {
        "user": (RATE_LIMIT_USER_RATE, RATE_LIMIT_USER_BURST),
        "ip": (RATE_LIMIT_IP_RATE, RATE_LIMIT_IP_BURST),
    },
    "write": {
        "user": (RATE_LIMIT_USER_RATE, RATE_LIMIT_USER_BURST),
        "ip": (RATE_LIMIT_IP_RATE, RATE_LIMIT_IP_BURST),
    },
    "read": {
        "user": (RATE_LIMIT_USER_RATE * 4, RATE_LIMIT_USER_BURST * 4),
        "ip": (RATE_LIMIT_IP_RATE * 4, RATE_LIMIT_IP_BURST * 4),
    },
    # The crowd's pages, per process and per address only (limits/middleware.py): telling the
    # shopper would cost the state poll a read of the session.
    "page": {"ip": (RATE_LIMIT_IP_RATE * 4, RATE_LIMIT_IP_BURST * 4)},
    # Purchase passes: a few per shopper per minute, however many accounts share an address.
    "pass": {"user": (RATE_LIMIT_PASS_PER_MINUTE / 60, RATE_LIMIT_PASS_PER_MINUTE)},
    "login": {
        "ip": (RATE_LIMIT_LOGIN_RATE * 10, RATE_LIMIT_LOGIN_BURST * 10),
        "username": (RATE_LIMIT_LOGIN_RATE, RATE_LIMIT_LOGIN_BURST),
    },
    # Load balancers ask every few seconds; a flood of health checks must not reach the
    # database, Redis and the broker.
    "health": {"ip": (RATE_LIMIT_HEALTH_RATE, RATE_LIMIT_HEALTH_BURST)},
}
# Addresses (CIDR) of the proxies in front whose X-Forwarded-For is believed.
RATE_LIMIT_TRUSTED_PROXIES = env.list("RATE_LIMIT_TRUSTED_PROXIES", default=[])

# After this many consecutive Redis failures, stop calling Redis for this many seconds.
REDIS_BREAKER_FAILURES = env.int("REDIS_BREAKER_FAILURES", default=5)
REDIS_BREAKER_RESET_SECONDS = env.float("REDIS_BREAKER_RESET_SECONDS", default=5.0)
# How long a process remembers that a sale refused (sold out, not started; ended) before
# asking Redis again. Restocks and extensions clear it at once through pub/sub.
SALE_GATE_SECONDS = env.float("SALE_GATE_SECONDS", default=1.0)
SALE_GATE_ENDED_SECONDS = env.float("SALE_GATE_ENDED_SECONDS", default=30.0)
# "redis" admits purchases in Redis (the fast path); "database" sells through PostgreSQL alone,
# for a shop run without Redis and to measure the difference.
PURCHASE_ADMISSION = env.str("PURCHASE_ADMISSION", default="redis")
# Bearer-token purchases on the usual path are served in plain WSGI (purchase/door.py).
PURCHASE_DOOR = env.bool("PURCHASE_DOOR", default=True)
# With Redis away, sell through PostgreSQL alone (slower, still correct) instead of a 503.
PURCHASE_DATABASE_FALLBACK = env.bool("PURCHASE_DATABASE_FALLBACK", default=False)

# Purchase passes (purchase/passes.py), for sales that require one: issued from this many seconds
# before the start, each good for this many seconds and this many purchase attempts; with the
# sale's proof of work on, the solver tries up to this many numbers (half, on average).
PURCHASE_PASS_LEAD = env.int("PURCHASE_PASS_LEAD", default=120)
PURCHASE_PASS_SECONDS = env.int("PURCHASE_PASS_SECONDS", default=300)
PURCHASE_PASS_USES = env.int("PURCHASE_PASS_USES", default=5)
PURCHASE_PASS_CHALLENGE_MAX_NUMBER = env.int("PURCHASE_PASS_CHALLENGE_MAX_NUMBER", default=100_000)
PURCHASE_PASS_CHALLENGE_SECONDS = env.int("PURCHASE_PASS_CHALLENGE_SECONDS", default=600)

# Waiting rooms (orders/waiting_room.py): the most shoppers a second staff may let through, what
# the shop serves (`make bench`: accepted purchases a second, with room for retries).
WAITING_ROOM_MAX_LET_THROUGH = env.int("WAITING_ROOM_MAX_LET_THROUGH", default=2000)

# A new or lifted purchase block (orders/blocks.py) holds in every web process within this time.
PURCHASE_BLOCKS_REFRESH_SECONDS = env.float("PURCHASE_BLOCKS_REFRESH_SECONDS", default=2.0)

# The shop's money and its address in links that leave it (e-mails).
SHOP_CURRENCY = env.str("SHOP_CURRENCY", default="EUR")
SHOP_LOCALE = env.str("SHOP_LOCALE", default="en_IE")
SHOP_URL = env.str("SHOP_URL", default="http://127.0.0.1:8000").rstrip("/")

# Seconds an order waits for payment before it is cancelled and its unit released.
ORDER_PAYMENT_TIMEOUT = env.int("ORDER_PAYMENT_TIMEOUT", default=15 * 60)
PAYMENT_PROVIDER = env.str("PAYMENT_PROVIDER", default="orders.payments.TestModePaymentProvider")

# Flash sales: when the sale layer is loaded into Redis, how long purchase answers are
# remembered per Idempotency-Key, and how the order writer batches and recovers.
FLASH_SALE_PREHEAT_LEAD = env.int("FLASH_SALE_PREHEAT_LEAD", default=10 * 60)
IDEMPOTENCY_KEY_TTL = env.int("IDEMPOTENCY_KEY_TTL", default=24 * 60 * 60)
PURCHASE_MAX_QUANTITY = env.int("PURCHASE_MAX_QUANTITY", default=10)
ORDER_WRITER_BATCH_SIZE = env.int("ORDER_WRITER_BATCH_SIZE", default=500)
ORDER_WRITER_DRAIN_FLAG_MS = env.int("ORDER_WRITER_DRAIN_FLAG_MS", default=250)
ORDER_WRITER_MAX_BATCHES = env.int("ORDER_WRITER_MAX_BATCHES", default=40)
ORDER_WRITER_LINGER_MS = env.int("ORDER_WRITER_LINGER_MS", default=100)
ORDER_WRITER_RECLAIM_IDLE_MS = env.int("ORDER_WRITER_RECLAIM_IDLE_MS", default=30_000)

SEED_DEMO = env.bool("SEED_DEMO", default=True)
DEMO_ADMIN_PASSWORD = env.str("DEMO_ADMIN_PASSWORD", default="")
DEMO_SHOPPER_PASSWORD = env.str("DEMO_SHOPPER_PASSWORD", default="")

# Health checks give up on a dependency after this many seconds; the broker's answer (a new
# connection each time) is reused for this many.
HEALTHZ_TIMEOUT = env.float("HEALTHZ_TIMEOUT", default=2.0)
HEALTHZ_BROKER_CACHE_SECONDS = env.float("HEALTHZ_BROKER_CACHE_SECONDS", default=2.0)

# /metrics answers a scraper that sends `Authorization: Bearer <METRICS_TOKEN>` or comes from
# one of these networks (CIDR; the client address as the rate limiter sees it).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])

# --- Email ---------------------------------------------------------------------------------

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
# With the SMTP backend: the mail server.
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# With core.mail.OneFilePerMessageBackend (make run): the folder each message is written to.
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(BASE_DIR / ".run" / "mail"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="shop@localhost")
STOCK_ALERT_RECIPIENTS = env.list("STOCK_ALERT_RECIPIENTS", default=[])

# --- Logging -------------------------------------------------------------------------------

# One JSON object a line (LOG_FORMAT=json, the default without DEBUG) or plain text; every
# line carries the request id, which responses return as X-Request-ID.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.middleware.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
        },
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env.str("LOG_FORMAT", default="plain" if DEBUG else "json"),
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django logs every 4xx as a warning; here they are answers (sold out, rate limited) that
    # come by the thousand in a second and are counted in /metrics. Server errors still log.
    "loggers": {"django.request": {"level": "ERROR"}},
}
