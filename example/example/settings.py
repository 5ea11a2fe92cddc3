"""Settings of the reference service, read from the environment.

DATABASE_URL, REDIS_URL and CELERY_BROKER_URL choose the real services; unset,
the service runs on SQLite, the local-memory cache and in-process tasks. CACHE_URL (default:
REDIS_URL) may name the representation cache's Redis apart, e.g. through Sentinel;
EDGE_PURGE_URLS (comma-separated Varnish addresses) puts an edge in front.
"""

import os
from pathlib import Path

from drf_scale.db import database_config, replica_config

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-not-secret")
DEBUG = os.environ.get("DEBUG", "0") == "1"
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "drf_scale",
    "shop",
]

MIDDLEWARE = [
    "drf_scale.middleware.ChunkedBodyMiddleware",
    "drf_scale.middleware.ServerTimingMiddleware",
    "drf_scale.middleware.DatabaseUnavailableMiddleware",
    "drf_scale.routers.ReadPositionMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
# SERVED_BY (e.g. app1): every response names the host that answered, in X-Served-By.
if os.environ.get("SERVED_BY"):
    MIDDLEWARE.insert(0, "shop.served_by.ServedByMiddleware")

ROOT_URLCONF = "example.urls"
WSGI_APPLICATION = "example.wsgi.application"
ASGI_APPLICATION = "example.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]

# How the service is served: "wsgi" (gunicorn sync workers) or "asgi" (uvicorn workers).
SERVER_MODE = os.environ.get("SERVER_MODE", "wsgi")
DATABASE_URL = os.environ.get("DATABASE_URL")
DATABASES = {
    "default": database_config(
        DATABASE_URL or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # DB_MODE, with DATABASE_URL: direct (kept connections), pool or pgbouncer.
        mode=os.environ.get("DB_MODE", "direct") if DATABASE_URL else "direct",
        server=SERVER_MODE,
    )
}
# REPLICA_URLS, comma-separated, with DATABASE_URL: streaming replicas of it serve reads,
# held the DB_MODE way, as the primary is (e.g. both through PgBouncer).
for number, url in enumerate(filter(None, os.environ.get("REPLICA_URLS", "").split(",")), 1):
    DATABASES[f"replica_{number}"] = replica_config(
        url.strip(), DATABASES["default"]["DRF_SCALE_MODE"], server=SERVER_MODE
    )
DATABASE_ROUTERS = ["drf_scale.routers.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL")
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # A Redis that hangs costs a request this long, then the breaker skips it.
            "OPTIONS": {"socket_timeout": 0.25, "socket_connect_timeout": 0.25},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
# A worker that dies holding a message (a refresh waiting for its countdown, a purge retry)
# never acknowledged it: on Redis the broker hands it to another worker after this many
# seconds (longer than any countdown, or a live worker's message is handed on too).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
    # Look for such messages every 5 s (kombu's default: every 100 s).
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
}

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Requests larger than this are refused with 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: anonymous writes get 401 with WWW-Authenticate, not 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_SCHEMA_CLASS": "shop.schema.ShopAutoSchema",
    "EXCEPTION_HANDLER": "shop.errors.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "drf-scale reference shop",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Request bodies get components of their own, without the read-only fields.
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema describes the shop's routes, not itself.
    "SERVE_INCLUDE_SCHEMA": False,
}

# The representation cache lives in Redis when there is one, else in this process's memory.
# REPRESENTATION_CACHE=off serves /api/ without it (the bench's uncached row).
DRF_SCALE = {
    "SERVER_TIMING": True,
    "SERVER_MODE": SERVER_MODE,
    "CACHE_URL": os.environ.get("CACHE_URL") or REDIS_URL,
    "CACHE_ENABLED": os.environ.get("REPRESENTATION_CACHE", "on") != "off",
    # Seconds of replay lag past which a replica's reads go to the primary.
    "REPLICA_MAX_LAG": float(os.environ.get("REPLICA_MAX_LAG", "5")),
    # Milliseconds a replica's sampled position is reused.
    "REPLICA_SAMPLE_MS": int(os.environ.get("REPLICA_SAMPLE_MS", "20")),
}
# RENDER_IN_DATABASE=off: /api/ product lists render through the compiled plan in Python, not
# as JSON built by PostgreSQL (the view's render_in_database; the bench's uncached row).
RENDER_IN_DATABASE = os.environ.get("RENDER_IN_DATABASE", "on") != "off"
# EDGE_PURGE_URLS: Varnish instances (with the xkey vmod) in front; writes purge them.
if os.environ.get("EDGE_PURGE_URLS"):
    DRF_SCALE |= {
        "EDGE_KEY_HEADER": "xkey",
        "EDGE_PURGER": "drf_scale.edge.VarnishPurger",
        "EDGE_PURGER_OPTIONS": {
            "urls": [url.strip() for url in os.environ["EDGE_PURGE_URLS"].split(",")]
        },
    }

# The shipping provider of the async quote view; `python -m upstream` serves a stand-in.
SHIPPING_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8001")
# Seconds the quote view waits for the provider before answering 504.
SHIPPING_TIMEOUT = float(os.environ.get("UPSTREAM_TIMEOUT", "2"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
