"""Test settings: the reference service plus the library's own test app."""

from example.settings import *  # noqa: F403
from example.settings import DRF_SCALE, INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [
    *INSTALLED_APPS,
    "taggit",
    "tests.testapp",
    "tests.pagingapp",
    "tests.fastapp",
    "tests.taggedapp",
    "tests.sqlapp",
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]
# Tests fail on a budget overrun or an N+1, wherever it happens.
DRF_SCALE = {**DRF_SCALE, "QUERY_CHECKS": "raise", "CACHE_KEY_PREFIX": "drf_scale_test"}
