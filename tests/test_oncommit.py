"""After-commit hooks run isolated: a failing one is logged and counted, never a 5xx after a
committed write, never skipping the hooks after it."""

import socket

import pytest
from django.db import transaction

from drf_scale.breaker import guarded_cache
from drf_scale.oncommit import after_commit, hook_failures
from shop.models import Product


def test_a_failing_hook_neither_raises_nor_skips_the_next(db, django_capture_on_commit_callbacks):
    ran, fell_back = [], []

    def fails() -> None:
        raise ConnectionError("the store is gone")

    before = hook_failures().get("failing hook", 0)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        after_commit(fails, name="failing hook", on_failure=lambda: fell_back.append(True))
        after_commit(lambda: ran.append(True), name="next hook")
    assert ran == [True] and fell_back == [True]
    assert hook_failures()["failing hook"] == before + 1
    assert "next hook" not in hook_failures()


def test_a_rolled_back_transaction_runs_no_hook(db, django_capture_on_commit_callbacks):
    ran = []
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        after_commit(lambda: ran.append(True), name="hook")
        raise RuntimeError("rolled back")
    assert ran == []


def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_a_write_with_its_aggregate_cache_down_commits_answers_200_and_invalidates(
    staff_client, settings
):
    """Redis (Django's cache, where aggregates queue their refresh) refuses connections: the
    PATCH still answers 200, the row is committed, and the representation cache still drops
    the old representation."""
    from tests.factories import make_catalog

    product = make_catalog(products=2)["products"][0]
    url = f"/api/products/{product.pk}/"
    assert staff_client.get(url).status_code == 200
    assert staff_client.get(url)["X-Cache"] == "hit"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    response = staff_client.patch(url, {"name": "Renamed"}, format="json")
    assert response.status_code == 200, response.content[:300]
    assert Product.objects.get(pk=product.pk).name == "Renamed"
    assert guarded_cache("default").breaker.errors > 0  # the refresh met the dead Redis
    fresh = staff_client.get(url)
    assert fresh["X-Cache"] == "miss" and fresh.json()["name"] == "Renamed"
