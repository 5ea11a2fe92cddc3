"""The representation cache through a Redis outage, on a private ``redis-server``.

Each test starts its own Redis on a free port and points CACHE_URL at it; then the cache is
warmed, Redis goes away (terminated, or hung with SIGSTOP), a write loses its invalidation,
and Redis comes back: empty, from its append-only file (the entries stored before the
outage are back, the hard case), or as it was (a hung Redis that resumes). Throughout,
reads answer 200 with the data of the database, the circuit breaker keeps the outage cheap,
and once Redis is back a read never shows what the lost invalidation should have removed.

Runs on SQLite and PostgreSQL: it needs only the ``redis-server`` binary (skipped without it,
failed without it under CI=true). At the end: another process after a lost invalidation, and
a Redis restored from a snapshot older than a delivered invalidation (its new run_id renews
the epoch).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from drf_scale.cache.redis_store import RedisStore
from drf_scale.cache.store import Unavailable, get_store, object_key
from shop.models import Product
from tests.factories import make_catalog, make_user
from tests.processes import ManagedProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)  # invalidations run on commit

REDIS_SERVER = shutil.which("redis-server")
SOCKET_TIMEOUT = 0.25  # what each attempt costs while a hung Redis does not answer
COOLDOWN = 0.3
FAILURES = 2
OUTAGE_READS = 20  # 10 details and 10 lists
PRODUCTS = 6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer(ManagedProcess):
    """A private redis-server: started, terminated (as an orderly shutdown: the append-only
    file is complete), crashed, hung and resumed by the test."""

    def __init__(self, directory: Path, *, persistent: bool, options: Sequence[str] = ()) -> None:
        self.directory, self.persistent, self.options = directory, persistent, list(options)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.log = directory / "redis.log"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--logfile", str(self.log),
                "--save", "",
                *(persistence if self.persistent else ["--appendonly", "no"]),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.answers, f"redis-server on port {self.port}")

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = self.log.read_text() if self.log.exists() else ""
            pytest.fail(f"redis-server exited with {self.process.returncode}:\n{log}")
        with contextlib.suppress(redis.RedisError):
            return bool(self.raw().ping())
        return False

    def raw(self) -> redis.Redis:
        """A client of its own, outside the store under test."""
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def crash(self) -> None:
        """SIGKILL: nothing is written on the way out."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None


@contextlib.contextmanager
def store_at(url: str, socket_timeout: float = SOCKET_TIMEOUT) -> Iterator[RedisStore]:
    """The representation cache on the Redis ``url`` names, with short timeouts and breaker."""
    with override_settings(
        DRF_SCALE={
            **settings.DRF_SCALE,
            "CACHE_URL": url,
            "CACHE_SOCKET_TIMEOUT": socket_timeout,
            "CACHE_BREAKER_FAILURES": FAILURES,
            "CACHE_BREAKER_COOLDOWN": COOLDOWN,
        }
    ):
        store = get_store()
        assert isinstance(store, RedisStore)
        yield store


@pytest.fixture
def store(private_redis) -> Iterator[RedisStore]:
    """The representation cache on the private Redis."""
    with store_at(private_redis.url) as found:
        yield found


def get(client: APIClient, url: str) -> Any:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.content[:500])
    return response


def outage_reads(client: APIClient, detail: str, listing: str) -> tuple[list, float]:
    """OUTAGE_READS reads, details and lists in turn: the responses and the time they took."""
    start = time.monotonic()
    responses = [get(client, detail if i % 2 == 0 else listing) for i in range(OUTAGE_READS)]
    return responses, time.monotonic() - start


def read_until_hit(client: APIClient, url: str, expected: Any, hit: str) -> None:
    """Read ``url`` until it comes from the cache again; every answer must be ``expected``."""

    def hits() -> bool:
        response = get(client, url)
        assert response.json() == expected, f"stale data served by {url} ({response['X-Cache']})"
        return response["X-Cache"] == hit

    wait_until(hits, f"{url} to be a cache hit again")


@pytest.mark.parametrize(
    ("private_redis", "outage"),
    [(False, "terminated"), (True, "terminated"), (False, "hung")],
    ids=["restarts-empty", "restarts-from-aof", "hangs-then-resumes"],
    indirect=["private_redis"],
)
def test_a_lost_invalidation_is_never_served_after_redis_returns(
    private_redis, store, outage, caplog
):
    catalog = make_catalog(products=PRODUCTS)
    product = catalog["products"][0]
    brand = product.brand
    of_brand = set(Product.objects.filter(brand=brand).values_list("pk", flat=True))
    assert len(of_brand) > 1  # the rename reaches products beyond the one patched
    client, staff = APIClient(), APIClient()
    staff.force_authenticate(make_user("staff", staff=True))
    detail, listing = f"/api/products/{product.pk}/", f"/api/products/?page_size={PRODUCTS}"

    # Warm: the detail and every row of the list come from Redis.
    old_detail, old_list = get(client, detail).json(), get(client, listing).json()
    warm = get(client, detail)
    assert (warm["X-Cache"], warm.timing.queries, warm.json()) == ("hit", 0, old_detail)
    warm_list = get(client, listing)
    assert (warm_list["X-Cache"], warm_list.json()) == (f"{PRODUCTS}/{PRODUCTS} hit", old_list)
    entry_key = object_key("shop.product", product.pk)
    assert private_redis.raw().exists(entry_key)

    # Redis goes away: reads still answer, from the database, without waiting on every one.
    if outage == "hung":
        private_redis.hang()
    else:
        private_redis.terminate()
    responses, elapsed = outage_reads(client, detail, listing)
    details, lists = responses[0::2], responses[1::2]
    assert {r["X-Cache"] for r in details} <= {"miss", "bypass"}
    assert {r["X-Cache"] for r in lists} == {f"0/{PRODUCTS} hit"}
    assert all(r.json() == old_detail for r in details)
    assert all(r.json() == old_list for r in lists)
    assert all(r.timing.queries > 0 for r in details)
    # The reads make 30 store calls (a detail 1, a list 2); the open breaker lets through
    # FAILURES of them, then one trial per cooldown.
    attempts = store.breaker.errors
    assert attempts <= FAILURES + elapsed / COOLDOWN + 1, (attempts, elapsed)
    assert elapsed < OUTAGE_READS * SOCKET_TIMEOUT, elapsed

    # Writes while Redis is away: their invalidations are lost (and said to be).
    with caplog.at_level(logging.WARNING, logger="drf_scale.cache"):
        patched = staff.patch(detail, {"name": "Renamed product"}, format="json")
        assert patched.status_code == 200, patched.json()
        brand.name = "Renamed brand"
        brand.save()
    assert "an invalidation was lost" in caplog.text
    new_detail = get(client, detail).json()
    new_list = get(client, listing).json()
    assert new_detail["name"] == "Renamed product"
    assert new_detail["brand"]["name"] == "Renamed brand"
    renamed = {row["id"] for row in new_list["results"] if row["brand"]["name"] == brand.name}
    assert renamed == of_brand
    assert new_detail != old_detail and new_list != old_list

    # Redis comes back.
    if outage == "hung":
        private_redis.resume()
    else:
        private_redis.start()
    if private_redis.persistent:  # the hard case: the entries of before are back
        stored = private_redis.raw().hgetall(entry_key)
        assert any(b'"name":"Product 0"' in value for value in stored.values()), stored

    # Once the breaker lets the store try again, reads show the new data, then hit again.
    read_until_hit(client, detail, new_detail, "hit")
    read_until_hit(client, listing, new_list, f"{PRODUCTS}/{PRODUCTS} hit")
    hit = get(client, detail)
    assert (hit["X-Cache"], hit.timing.queries, hit.json()) == ("hit", 0, new_detail)


# Known gaps: each test shows a stale read the design above does not prevent yet.


def cached_product(client: APIClient, private_redis: RedisServer) -> tuple[str, Product]:
    """A product whose detail is cached (a hit), on the private Redis."""
    product = make_catalog(products=PRODUCTS)["products"][0]
    product.refresh_from_db()  # the times make_catalog set afterwards
    detail = f"/api/products/{product.pk}/"
    get(client, detail)
    assert get(client, detail)["X-Cache"] == "hit"
    assert private_redis.raw().exists(object_key("shop.product", product.pk))
    return detail, product


@pytest.mark.parametrize("private_redis", [True], indirect=True, ids=["aof"])
def test_another_process_never_serves_what_a_lost_invalidation_left(private_redis, store):
    client = APIClient()
    detail, product = cached_product(client, private_redis)
    private_redis.terminate()
    product.name = "Renamed product"
    product.save()  # say in a management command, or a worker recycled since: its mark is gone
    expected = get(client, detail).json()
    assert expected["name"] == "Renamed product"
    # Another process of the service: a store of its own, which lost nothing.
    with override_settings(DRF_SCALE={**settings.DRF_SCALE}):
        assert get_store() is not store
        private_redis.start()  # from its append-only file: the old entry is back
        read_until_hit(client, detail, expected, "hit")


@pytest.mark.parametrize("private_redis", [False], indirect=True, ids=["rdb"])
def test_a_redis_restored_from_an_older_snapshot_never_serves_what_was_invalidated(
    private_redis, store
):
    client = APIClient()
    detail, product = cached_product(client, private_redis)
    private_redis.raw().save()  # an RDB snapshot, as "save 3600 1" takes it
    product.name = "Renamed product"
    product.save()  # Redis is up: the invalidation is delivered
    expected = get(client, detail).json()
    assert expected["name"] == "Renamed product"
    assert get(client, detail)["X-Cache"] == "hit"
    private_redis.crash()
    private_redis.start()  # loads the snapshot: the entry of before the rename is back
    read_until_hit(client, detail, expected, "hit")


def test_a_writer_that_lost_an_invalidation_in_a_freeze_heals_it_without_another_request(
    private_redis, store
):
    """Redis hangs (SIGSTOP) while another process writes: its invalidation is lost and its
    breaker opens. Once Redis answers again, that process renews the epoch by itself (no
    request of its own needed), and an invalidation it sends while its breaker is still open
    is not dropped: a reader that never saw the outage gets the new data, not the cached."""
    client = APIClient()
    products = make_catalog(products=PRODUCTS)["products"][:2]
    details = [f"/api/products/{product.pk}/" for product in products]
    for detail in details:
        get(client, detail)
        assert get(client, detail)["X-Cache"] == "hit"
    writer = RedisStore(private_redis.url)  # the other process's store: its own breaker
    base = Product._base_manager  # writes with no invalidation: the writer sends them

    private_redis.hang()
    base.filter(pk=products[0].pk).update(name="Renamed in the freeze")
    with pytest.raises(Unavailable):
        writer.invalidate({"shop.product": {products[0].pk}})
    wait_until(lambda: not writer.breaker.allows(), "the writer's breaker to open")
    private_redis.resume()

    base.filter(pk=products[1].pk).update(name="Renamed after the freeze")
    writer.invalidate({"shop.product": {products[1].pk}})  # breaker open: tried all the same
    assert not writer.breaker.allows()
    wait_until(lambda: not writer.renew_epoch, "the writer to renew the epoch")
    assert get(client, details[0]).json()["name"] == "Renamed in the freeze"
    assert get(client, details[1]).json()["name"] == "Renamed after the freeze"
    writer.retire()
