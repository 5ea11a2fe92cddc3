"""Test settings: the reference service plus the library's own test app."""

from example.settings import *  # noqa: F403
from example.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
