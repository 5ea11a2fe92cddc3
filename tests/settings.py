"""Test settings: the reference service plus the library's own test app."""

from example.settings import *  # noqa: F403
from example.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]
