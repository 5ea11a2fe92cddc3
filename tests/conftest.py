import contextlib
import shutil

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import make_catalog, make_user
from tests.services import in_ci


def pytest_collection_modifyitems(config, items):
    """Tests marked postgres need PostgreSQL; elsewhere they are skipped, never failed."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def catalog(db):
    return make_catalog()


@pytest.fixture
def client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def user_client(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


@pytest.fixture
def staff_client(db) -> APIClient:
    api = APIClient()
    api.force_authenticate(make_user("staff", staff=True))
    return api


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def empty_representation_cache():
    """Tests roll their transactions back, which invalidates nothing: start each one empty."""
    from drf_scale.cache.store import Unavailable, get_store

    with contextlib.suppress(Unavailable):
        get_store().clear()


@pytest.fixture
def redis_server_binary() -> str:
    """The redis-server binary, for tests that start (and break) a Redis of their own."""
    binary = shutil.which("redis-server")
    if binary is None:
        if in_ci():
            pytest.fail("redis-server not found on PATH and CI=true")
        pytest.skip("redis-server not found on PATH")
    return binary


@pytest.fixture
def private_redis(redis_server_binary, request, tmp_path):
    """A redis-server of this test's own on a free port (param: persistent), stopped after."""
    from tests.test_cache_outage import RedisServer

    server = RedisServer(tmp_path, persistent=getattr(request, "param", False))
    server.start()
    try:
        yield server
    finally:
        server.terminate()
