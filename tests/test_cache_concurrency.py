"""The representation cache under concurrent writes and reads, on PostgreSQL and Redis.

A writer thread commits new versions of a few products (their names, or their brand's name)
while reader threads get their details and the list. A read is stale when it shows a version
older than the one committed before the read was sent: the leases must prevent every such
read, while most reads still come from the cache. Two PATCHes from the same ETag: one wins,
the other gets 412. At the end: an invalidation lost while another thread renews the epoch
is not forgotten.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from drf_scale.cache.redis_store import RENEWER_THREAD, RedisStore
from drf_scale.cache.store import Unavailable, get_store
from shop.api_views import ProductViewSet
from shop.models import Product
from tests.factories import make_catalog, make_user
from tests.services import in_ci

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PRODUCTS = 6
READERS = 3
RUN_SECONDS = 3.0
MAX_RUN_SECONDS = 60.0
BURST = 2  # commits back to back: a read that missed after one races the next
WRITE_PAUSE = 0.03  # between two bursts: time for reads to hit
READ_PAUSE = 0.002  # between two reads of a reader: the writer gets the GIL too
VERSION = re.compile(r"v(\d+)$")


@pytest.fixture
def store() -> Iterator[RedisStore]:
    """The representation cache on REDIS_URL, under a key prefix of this test's own."""
    url = os.environ.get("REDIS_URL")
    if not url:
        if in_ci():
            pytest.fail("REDIS_URL not set and CI=true")
        pytest.skip("needs Redis (set REDIS_URL)")
    # A socket timeout that thread switches cannot reach: these tests are about leases and
    # invalidations, not about a Redis that does not answer (tests/test_cache_outage.py).
    scale = {
        **settings.DRF_SCALE,
        "CACHE_URL": url,
        "CACHE_KEY_PREFIX": f"drf_scale_test_{uuid.uuid4().hex[:12]}",
        "CACHE_SOCKET_TIMEOUT": 2.0,
    }
    with override_settings(DRF_SCALE=scale):
        store = get_store()
        assert isinstance(store, RedisStore)
        try:
            store.clear()
        except Unavailable as error:
            if in_ci():
                pytest.fail(f"Redis at {url} not reachable and CI=true: {error}")
            pytest.skip(f"Redis at {url} not reachable: {error}")
        try:
            yield store
        finally:
            store.clear()


def version_of(name: str) -> int:
    """n of a name "...v<n>"; 0 for the names of the catalog."""
    match = VERSION.search(name)
    return int(match.group(1)) if match else 0


@dataclass
class Read:
    pk: int
    committed_before: int  # the latest version committed when the request was sent
    seen: int
    hit: bool
    route: str


@dataclass
class Run:
    """Shared state of one run: the committed versions, the reads, the errors of threads."""

    committed: dict[int, int]
    stop: threading.Event = field(default_factory=threading.Event)
    reads: list[Read] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    writes: int = 0

    def thread(self, target: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                while not self.stop.is_set():
                    target()
            except BaseException as error:
                self.errors.append(error)
                self.stop.set()
            finally:
                connection.close()  # this thread's own connection

        return threading.Thread(target=run, daemon=True)

    def go(self, writer: Callable[[], None], readers: list[Callable[[], None]]) -> None:
        threads = [self.thread(writer), *(self.thread(reader) for reader in readers)]
        for thread in threads:
            thread.start()
        # At least RUN_SECONDS, then until the run has enough to judge (a loaded machine
        # reads more slowly), at most MAX_RUN_SECONDS.
        started = time.monotonic()
        while not self.stop.wait(0.1):
            elapsed = time.monotonic() - started
            if elapsed > MAX_RUN_SECONDS or (elapsed > RUN_SECONDS and not shortfalls(self)):
                break
        self.stop.set()
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive(), "a thread did not stop"
        if self.errors:
            raise self.errors[0]

    def writer(self, commit: Callable[[int], list[int]]) -> Callable[[], None]:
        """BURST commits of new versions, then a pause; ``commit(n)`` commits version n and
        returns the pks it changed, once it is committed (and invalidated)."""

        def write() -> None:
            for _ in range(BURST):
                self.writes += 1
                for pk in commit(self.writes):
                    self.committed[pk] = self.writes
            time.sleep(WRITE_PAUSE)

        return write

    def record(self, reads: list[Read]) -> None:
        with self.lock:
            self.reads.extend(reads)


def reader(run: Run, pks: list[int], seen: Callable[[dict], int]) -> Callable[[], None]:
    """Details of ``pks`` and the list, each read checked against what was committed before."""
    client = APIClient()
    listing = f"/api/products/?page_size={PRODUCTS}"

    def read() -> None:
        for pk in pks:
            before = run.committed[pk]
            response = client.get(f"/api/products/{pk}/")
            assert response.status_code == 200, response.content[:500]
            hit = response["X-Cache"] == "hit"
            run.record([Read(pk, before, seen(response.json()), hit, "detail")])
            time.sleep(READ_PAUSE)
        before_all = dict(run.committed)
        response = client.get(listing)
        assert response.status_code == 200, response.content[:500]
        rows = {row["id"]: row for row in response.json()["results"]}
        hits, total = map(int, response["X-Cache"].removesuffix(" hit").split("/"))
        assert total == PRODUCTS
        run.record([Read(pk, before_all[pk], seen(rows[pk]), hits == total, "list") for pk in pks])

    return read


def shortfalls(run: Run) -> list[tuple]:
    """What the run still lacks to say something: writes, reads, hits and versions per route."""
    with run.lock:
        reads_by_route = {
            route: [read for read in run.reads if read.route == route]
            for route in ("detail", "list")
        }
    missing: list[tuple] = []
    if run.writes < 20:  # the writer really wrote while they read
        missing.append(("writes", run.writes))
    for route, reads in reads_by_route.items():
        hits = sum(read.hit for read in reads)
        if len(reads) < 100:
            missing.append((route, "reads", len(reads)))
        # Some reads come from the cache (a list counts when all its rows did), so hits were
        # checked too; their share depends on the machine's load.
        if hits < 3:
            missing.append((route, "hits", hits))
        # ... and reads were served after new versions: versions moved under the readers.
        if len({read.seen for read in reads}) <= 10:
            missing.append((route, "versions seen", len({read.seen for read in reads})))
    return missing


def check(run: Run) -> None:
    stale = [read for read in run.reads if read.seen < read.committed_before]
    assert not stale, f"{len(stale)} stale reads of {len(run.reads)}, first: {stale[:5]}"
    assert not shortfalls(run)


@pytest.mark.parametrize("write", ["save", "update"])
def test_product_renames_are_never_read_stale(store, write):
    catalog = make_catalog(products=PRODUCTS)
    pks = [product.pk for product in catalog["products"][:3]]
    products = [Product.objects.get(pk=pk) for pk in pks]
    run = Run(committed=dict.fromkeys(pks, 0))

    def commit(n: int) -> list[int]:
        product = products[(n - 1) // BURST % len(products)]  # a burst writes one product
        if write == "save":  # signals; autocommit: committed and invalidated on return
            product.name = f"v{n}"
            product.save()
        else:  # CachedQuerySet.update()
            Product.objects.filter(pk=product.pk).update(name=f"v{n}")
        return [product.pk]

    readers = [reader(run, pks, lambda data: version_of(data["name"])) for _ in range(READERS)]
    run.go(run.writer(commit), readers)
    check(run)


def test_brand_renames_are_never_read_stale(store):
    catalog = make_catalog(products=PRODUCTS)
    brand = catalog["brands"][0]
    pks = list(Product.objects.filter(brand=brand).values_list("pk", flat=True))
    assert len(pks) == PRODUCTS // len(catalog["brands"])
    run = Run(committed=dict.fromkeys(pks, 0))

    def commit(n: int) -> list[int]:
        brand.name = f"Brand v{n}"
        brand.save()  # invalidates, after the commit, every product of the brand
        return pks

    def seen(data: dict) -> int:
        return version_of(data["brand"]["name"])

    run.go(run.writer(commit), [reader(run, pks, seen) for _ in range(READERS)])
    check(run)


def test_two_patches_from_the_same_etag_one_wins_one_gets_412(store, monkeypatch):
    catalog = make_catalog(products=PRODUCTS)
    product = catalog["products"][1]
    url = f"/api/products/{product.pk}/"
    staff = make_user("staff", staff=True)
    etag = APIClient().get(url)["ETag"]
    assert etag

    # Both requests read the object before either takes the row lock: without the lock (and
    # the ETag compared under it) both would pass their precondition.
    both_read = threading.Barrier(2, timeout=10)
    first_read = threading.local()
    get_object = ProductViewSet.get_object

    def get_object_then_wait(view: Any) -> Any:
        instance = get_object(view)
        if view.request.method == "PATCH" and not getattr(first_read, "done", False):
            first_read.done = True
            both_read.wait()
        return instance

    monkeypatch.setattr(ProductViewSet, "get_object", get_object_then_wait)
    # The winner's commit runs the aggregates' refresh inside the request (Celery is eager
    # without a broker): 13 queries, over the view's budget of 12. Not what is tested here.
    monkeypatch.setattr(ProductViewSet, "query_budget", None)
    start = threading.Barrier(2, timeout=10)
    responses: dict[str, Any] = {}
    errors: list[BaseException] = []

    def patch(name: str) -> None:
        try:
            client = APIClient()
            client.force_authenticate(staff)
            start.wait()
            responses[name] = client.patch(
                url, {"name": name}, format="json", headers={"If-Match": etag}
            )
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=patch, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    statuses = sorted(response.status_code for response in responses.values())
    assert statuses == [200, 412], [(r.status_code, r.content[:300]) for r in responses.values()]
    [winner] = [name for name, response in responses.items() if response.status_code == 200]
    product.refresh_from_db()
    assert product.name == winner
    # The cache shows the winner's write, with the ETag its PATCH answered.
    read = APIClient().get(url)
    assert read.json()["name"] == winner
    assert read["ETag"] == responses[winner]["ETag"] != etag


def test_an_invalidation_lost_during_an_epoch_renewal_is_not_forgotten(store, monkeypatch):
    """An invalidation is lost, so the store's renewal thread renews the epoch. While its SET
    is in flight, C caches a product and B's invalidation of that product's new version is
    lost too (a Redis timeout). The renewal must not clear the mark B set: it renews again."""
    catalog = make_catalog(products=PRODUCTS)
    product, other = (Product.objects.get(pk=p.pk) for p in catalog["products"][:2])
    url = f"/api/products/{product.pk}/"

    # Fault injection: the next `failing` pipelines (invalidations) time out.
    failing = [0]
    pipeline = store.client.pipeline

    def flaky_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = pipeline(*args, **kwargs)
        if failing[0]:
            failing[0] -= 1

            def execute(*_: Any, **__: Any) -> Any:
                raise redis.TimeoutError("injected")

            pipe.execute = execute
        return pipe

    monkeypatch.setattr(store.client, "pipeline", flaky_pipeline)
    # The first renewal pauses after its SET until B and C are done.
    renewing, proceed = threading.Event(), threading.Event()
    set_epoch = store.client.set

    def slow_set(*args: Any, **kwargs: Any) -> Any:
        result = set_epoch(*args, **kwargs)
        if threading.current_thread().name == RENEWER_THREAD and not renewing.is_set():
            renewing.set()
            assert proceed.wait(10)
        return result

    monkeypatch.setattr(store.client, "set", slow_set)
    failing[0] = 1
    other.name = "lost once"
    other.save()  # an invalidation lost: the renewal thread starts
    try:
        assert renewing.wait(10)
        client = APIClient()  # C, then B
        assert client.get(url)["X-Cache"] in ("miss", "hit")
        assert client.get(url)["X-Cache"] == "hit"
        failing[0] = 1
        product.name = "New name"
        product.save()  # B: committed, its invalidation lost
    finally:
        proceed.set()
    deadline = time.monotonic() + 10
    while store.renewer is not None and time.monotonic() < deadline:  # renewed, and again
        time.sleep(0.02)
    assert store.renewer is None and not store.renew_epoch
    assert client.get(url).json()["name"] == "New name"
