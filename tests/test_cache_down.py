"""Django's cache down (refused, or hung): counts and aggregates answer from the database,
through drf_scale.breaker.GuardedCache, never an error and never a hang."""

import pytest

from drf_scale.breaker import guarded_cache
from drf_scale.counting import CachedCount
from shop.models import Product
from tests.test_cache_outage import RedisServer
from tests.test_oncommit import closed_port


def redis_cache(url: str) -> dict:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_timeout": 0.2, "socket_connect_timeout": 0.2},
        }
    }


@pytest.fixture
def hung_redis(redis_server_binary, tmp_path):
    """A private redis-server, hung (SIGSTOP): connections are accepted, nothing answers."""
    server = RedisServer(tmp_path, persistent=False)
    server.start()
    server.hang()
    try:
        yield server
    finally:
        server.terminate()


@pytest.fixture(params=["refused", "hung"])
def dead_cache_url(request) -> str:
    if request.param == "refused":
        return f"redis://127.0.0.1:{closed_port()}/0"
    return request.getfixturevalue("hung_redis").url


def test_aggregates_are_computed_from_the_database(client, catalog, settings, dead_cache_url):
    expected = [client.get(f"/naive/{path}").json() for path in ("stats/categories/",)]
    settings.CACHES = redis_cache(dead_cache_url)
    for _ in range(3):  # the breaker opens on the way: later requests do not try Redis
        response = client.get("/api/stats/categories/")
        assert response.status_code == 200
        assert response.json()["results"] == expected[0]
    assert not guarded_cache("default").breaker.allows()


def test_a_cached_count_counts_in_the_request(db, catalog, settings, dead_cache_url):
    settings.CACHES = redis_cache(dead_cache_url)
    counted = CachedCount(ttl=60).count(Product.objects.filter(status="active"))
    assert counted.value == Product.objects.filter(status="active").count()
    assert counted.estimated is False
