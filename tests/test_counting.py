"""Count strategies (drf_scale.counting): exact, cached, estimated, hybrid."""

import datetime as dt
import threading
import time
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connection, connections
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from drf_scale.counting import (
    CachedCount,
    CountResult,
    CountStrategy,
    EstimatedCount,
    ExactCount,
    HybridCount,
)
from tests.pagingapp.models import Item, Scratch


class Stub(CountStrategy):
    """A strategy that answers ``value`` after ``delay`` seconds, counting its calls."""

    def __init__(self, value: int, estimated: bool = True, delay: float = 0.0) -> None:
        self.result = CountResult(value, estimated)
        self.delay = delay
        self.calls = 0
        self.lock = threading.Lock()

    def count(self, queryset):
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.result


class Broken(CountStrategy):
    def count(self, queryset):
        raise RuntimeError("database went away")


def make_items(n: int, category: int = 0) -> None:
    created = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    Item.objects.bulk_create(
        Item(category=category, score=Decimal(i), created=created) for i in range(n)
    )


@pytest.fixture
def prefix() -> str:
    """A cache key prefix of the test's own: the Redis database may be shared."""
    return f"test-count:{uuid.uuid4().hex}"


def test_exact_count(db):
    make_items(4)
    make_items(3, category=1)
    assert ExactCount().count(Item.objects.all()) == CountResult(7, estimated=False)
    assert ExactCount().count(Item.objects.filter(category=1)) == CountResult(3, estimated=False)


@pytest.mark.parametrize(
    "strategy", [ExactCount(), EstimatedCount(), HybridCount(), CachedCount(ttl=60)], ids=repr
)
def test_a_queryset_that_matches_nothing_costs_no_query(db, strategy):
    for queryset in (Item.objects.none(), Item.objects.filter(id__in=[])):
        with CaptureQueriesContext(connection) as queries:
            assert strategy.count(queryset) == CountResult(0, estimated=False)
        assert len(queries) == 0


def test_estimated_count_is_exact_off_postgresql(db):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL estimates; covered by the postgres tests below")
    make_items(5)
    assert EstimatedCount().count(Item.objects.filter(score__gte=2)) == CountResult(3, False)


def test_hybrid_counts_exactly_below_the_threshold(db):
    make_items(5)
    small = HybridCount(threshold=1000, estimate=Stub(400, estimated=True))
    assert small.count(Item.objects.all()) == CountResult(5, estimated=False)
    large = HybridCount(threshold=100, estimate=Stub(400, estimated=True))
    assert large.count(Item.objects.all()) == CountResult(400, estimated=True)
    exact_already = HybridCount(threshold=1000, estimate=Stub(7, estimated=False))
    assert exact_already.count(Item.objects.all()) == CountResult(7, estimated=False)


def test_cached_count_serves_repeats_from_the_cache(db, prefix):
    make_items(3)
    strategy = CachedCount(ttl=60, key_prefix=prefix)
    with CaptureQueriesContext(connection) as queries:
        assert strategy.count(Item.objects.all()) == CountResult(3, estimated=False)
    assert len(queries) == 1
    make_items(2)
    with CaptureQueriesContext(connection) as queries:
        assert strategy.count(Item.objects.order_by("-id")) == CountResult(3, estimated=False)
    assert len(queries) == 0  # the ordering does not change the key
    assert strategy.count(Item.objects.filter(score__gte=1)) == CountResult(3, estimated=False)


def test_cached_count_expires_after_its_ttl(db, prefix):
    make_items(3)
    strategy = CachedCount(ttl=1, key_prefix=prefix)
    assert strategy.count(Item.objects.all()).value == 3
    make_items(1)
    assert strategy.count(Item.objects.all()).value == 3
    time.sleep(1.2)
    assert strategy.count(Item.objects.all()).value == 4


def test_cached_count_computes_once_under_a_burst(db, prefix):
    slow = Stub(42, estimated=False, delay=0.3)
    strategy = CachedCount(ttl=60, strategy=slow, wait=5, poll=0.01, key_prefix=prefix)
    start = threading.Barrier(8)
    results = []

    def request():
        try:
            start.wait()
            results.append(strategy.count(Item.objects.filter(category=7)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert slow.calls == 1
    assert results == [CountResult(42, estimated=False)] * 8


def test_cached_count_falls_back_while_another_computes(db, prefix):
    strategy = CachedCount(
        ttl=60, fallback=Stub(99, estimated=True), wait=0.05, poll=0.01, key_prefix=prefix
    )
    key = strategy.get_key(Item.objects.all())
    assert cache.add(f"{key}:lock", 1)
    try:
        assert strategy.count(Item.objects.all()) == CountResult(99, estimated=True)
    finally:
        cache.delete(f"{key}:lock")


def test_cached_count_releases_its_lock_when_the_count_fails(db, prefix):
    strategy = CachedCount(ttl=60, strategy=Broken(), key_prefix=prefix)
    with pytest.raises(RuntimeError):
        strategy.count(Item.objects.all())
    assert cache.get(f"{strategy.get_key(Item.objects.all())}:lock") is None


@pytest.mark.django_db(transaction=True)
async def test_acount_runs_the_same_strategy():
    await sync_to_async(make_items)(6)
    try:
        assert await ExactCount().acount(Item.objects.all()) == CountResult(6, False)
        assert await HybridCount().acount(Item.objects.filter(score__lt=2)) == CountResult(2, False)
    finally:
        await sync_to_async(connections.close_all)()


# PostgreSQL estimates, on a table each test creates: never analyzed until it says so.


@pytest.fixture
def scratch(db):
    with connection.schema_editor() as editor:
        editor.create_model(Scratch)  # rolled back with the test's transaction


def fill(start: int, stop: int) -> None:
    """Rows start..stop-1: bucket = i % 10 (10 values), value = i (uniform)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO pagingapp_scratch (bucket, value) "
            "SELECT mod(i, 10), i FROM generate_series(%s, %s) AS i",
            [start, stop - 1],
        )


def analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE pagingapp_scratch")


def reltuples() -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'pagingapp_scratch'::regclass")
        return cursor.fetchone()[0]


def assert_close(result: CountResult, truth: int, tolerance: float) -> None:
    assert result.estimated, result
    assert abs(result.value - truth) <= tolerance * truth, (result.value, truth)


@pytest.mark.postgres
def test_never_analyzed_table_is_counted_exactly(scratch):
    fill(0, 3000)
    assert reltuples() == -1  # PostgreSQL 14+: no statistics yet
    estimate = EstimatedCount()
    assert estimate.count(Scratch.objects.all()) == CountResult(3000, estimated=False)
    assert estimate.count(Scratch.objects.filter(bucket=3)) == CountResult(300, estimated=False)


@pytest.mark.postgres
def test_estimates_on_an_analyzed_table(scratch):
    """Tolerances: 1% unfiltered, 10% filtered (the planner's histograms), 5% after growth."""
    fill(0, 20_000)
    analyze()
    estimate = EstimatedCount()
    with CaptureQueriesContext(connection) as queries:
        assert_close(estimate.count(Scratch.objects.all()), 20_000, 0.01)
    assert len(queries) == 1 and "pg_class" in queries[0]["sql"]
    with CaptureQueriesContext(connection) as queries:
        assert_close(estimate.count(Scratch.objects.filter(bucket=3)), 2_000, 0.10)
    assert len(queries) == 2 and queries[1]["sql"].startswith("EXPLAIN (FORMAT JSON)")
    assert_close(estimate.count(Scratch.objects.filter(value__lt=5_000)), 5_000, 0.10)
    assert_close(estimate.count(Scratch.objects.filter(bucket=3, value__lt=5_000)), 500, 0.10)

    # Growth since ANALYZE: reltuples is scaled by the table's current size in pages.
    fill(20_000, 30_000)
    assert_close(estimate.count(Scratch.objects.all()), 30_000, 0.05)


@pytest.mark.postgres
def test_estimates_fall_back_to_exact_where_meaningless(scratch):
    fill(0, 5_000)
    analyze()
    estimate = EstimatedCount()
    buckets = Scratch.objects.values("bucket")
    assert estimate.count(buckets.distinct()) == CountResult(10, estimated=False)
    assert estimate.count(buckets.annotate(n=Count("id"))) == CountResult(10, estimated=False)
    assert estimate.count(Scratch.objects.all()[:7]) == CountResult(7, estimated=False)
    union = Scratch.objects.filter(bucket=1).union(Scratch.objects.filter(bucket=2))
    assert estimate.count(union) == CountResult(1_000, estimated=False)


@pytest.mark.postgres
def test_hybrid_on_postgresql(scratch):
    fill(0, 20_000)
    analyze()
    hybrid = HybridCount(threshold=10_000)
    assert hybrid.count(Scratch.objects.filter(bucket=3)) == CountResult(2_000, estimated=False)
    assert_close(hybrid.count(Scratch.objects.all()), 20_000, 0.01)
