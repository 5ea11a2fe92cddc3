"""Count strategies: how a paginator learns the number of rows without paying COUNT(*) each time.

    ExactCount()           SELECT COUNT(*), every time.
    EstimatedCount()       PostgreSQL's planner statistics; exact elsewhere and where
                           an estimate means nothing (DISTINCT, GROUP BY, slices).
    HybridCount(10_000)    exact below the threshold, estimated above it.
    CachedCount(ttl=60)    another strategy's result kept in Django's cache, computed
                           by one request at a time under a burst.

Every strategy returns a ``CountResult(value, estimated)``; ``acount()`` is the
same for async code.
"""

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet

from drf_scale.breaker import guarded_cache
from drf_scale.conf import scale_settings

__all__ = [
    "CachedCount",
    "CountResult",
    "CountStrategy",
    "EstimatedCount",
    "ExactCount",
    "HybridCount",
]


@dataclass(frozen=True, slots=True)
class CountResult:
    """A row count, and whether it is the planner's estimate rather than an exact count."""

    value: int
    estimated: bool


class CountStrategy:
    """Counts the rows of a queryset. Subclasses implement ``count``."""

    def count(self, queryset: QuerySet[Any]) -> CountResult:
        raise NotImplementedError

    async def acount(self, queryset: QuerySet[Any]) -> CountResult:
        return await sync_to_async(self.count)(queryset)


def compile_queryset(queryset: QuerySet[Any]) -> tuple[str, tuple[Any, ...]] | None:
    """The SQL and parameters of ``queryset`` on its database; None if it can match no row."""
    try:
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except EmptyResultSet:
        return None
    return sql, tuple(params)


class ExactCount(CountStrategy):
    """``queryset.count()``."""

    def count(self, queryset: QuerySet[Any]) -> CountResult:
        return CountResult(queryset.count(), estimated=False)


class EstimatedCount(CountStrategy):
    """The PostgreSQL planner's row estimate.

    Unfiltered: ``pg_class.reltuples`` scaled by the table's current size in pages,
    as the planner itself does. Filtered: the top row estimate of ``EXPLAIN``.
    Exact instead where an estimate would be wrong or meaningless: other
    databases, tables without statistics (never analyzed, or analyzed while
    empty), and DISTINCT, grouped, sliced or combined (UNION...) querysets.
    """

    exact = ExactCount()

    def count(self, queryset: QuerySet[Any]) -> CountResult:
        connection = connections[queryset.db]
        query = queryset.query
        if (
            connection.vendor != "postgresql"
            or query.distinct
            or query.group_by is not None
            or query.is_sliced
            or query.combinator
        ):
            return self.exact.count(queryset)
        compiled = compile_queryset(queryset.order_by())
        if compiled is None:
            return CountResult(0, estimated=False)
        table = connection.ops.quote_name(queryset.model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples, relpages, "
                "pg_relation_size(oid) / current_setting('block_size')::int "
                "FROM pg_class WHERE oid = %s::regclass",
                [table],
            )
            reltuples, relpages, pages = cursor.fetchone()
            if reltuples < 0 or relpages == 0:
                return self.exact.count(queryset)
            if not query.where and len(query.alias_map) <= 1:
                return CountResult(round(reltuples / relpages * pages), estimated=True)
            sql, params = compiled
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0]
        return CountResult(int(plan[0]["Plan"]["Plan Rows"]), estimated=True)


class HybridCount(CountStrategy):
    """Exact when the estimate is below ``threshold`` rows, the estimate otherwise.

    Small results get a cheap exact count; large ones never pay COUNT(*).
    ``threshold`` defaults to ``DRF_SCALE["COUNT_HYBRID_THRESHOLD"]``.
    """

    def __init__(
        self,
        threshold: int | None = None,
        estimate: CountStrategy | None = None,
        exact: CountStrategy | None = None,
    ) -> None:
        self.threshold = threshold
        self.estimate = estimate or EstimatedCount()
        self.exact = exact or ExactCount()

    def count(self, queryset: QuerySet[Any]) -> CountResult:
        threshold = self.threshold
        if threshold is None:
            threshold = scale_settings.COUNT_HYBRID_THRESHOLD
        result = self.estimate.count(queryset)
        if result.estimated and result.value < threshold:
            return self.exact.count(queryset)
        return result


class CachedCount(CountStrategy):
    """Another strategy's count, kept in Django's cache for ``ttl`` seconds.

    The key is a hash of the queryset's SQL and parameters. On a miss one caller
    takes a lock (``cache.add``) and computes; the others poll the cache for up
    to ``wait`` seconds, then answer with ``fallback`` (an estimate by default)
    rather than all running the same COUNT at once. A cached exact count is
    reported as exact: it was, at most ``ttl`` seconds ago.
    """

    def __init__(
        self,
        ttl: float | None = None,
        strategy: CountStrategy | None = None,
        *,
        fallback: CountStrategy | None = None,
        wait: float = 1.0,
        poll: float = 0.05,
        lock_timeout: float = 60.0,
        cache_alias: str | None = None,
        key_prefix: str = "drf_scale:count",
    ) -> None:
        self.ttl = ttl
        self.strategy = strategy or ExactCount()
        self.fallback = fallback or EstimatedCount()
        self.wait = wait
        self.poll = poll
        self.lock_timeout = lock_timeout
        self.cache_alias = cache_alias
        self.key_prefix = key_prefix

    def get_key(self, queryset: QuerySet[Any]) -> str | None:
        """The cache key of ``queryset``'s count; None when it can match no row."""
        compiled = compile_queryset(queryset.order_by())
        if compiled is None:
            return None
        digest = hashlib.sha256(repr((queryset.db, *compiled)).encode()).hexdigest()
        return f"{self.key_prefix}:{digest[:32]}"

    def count(self, queryset: QuerySet[Any]) -> CountResult:
        key = self.get_key(queryset)
        if key is None:
            return CountResult(0, estimated=False)
        cache = guarded_cache(self.cache_alias or scale_settings.COUNT_CACHE)
        cached = cache.get(key)
        if cached is not None:
            return CountResult(*cached)
        # The cache down: every caller counts, as without this strategy.
        if cache.add(f"{key}:lock", 1, timeout=self.lock_timeout, on_failure=True):
            try:
                result = self.strategy.count(queryset)
                ttl = self.ttl if self.ttl is not None else scale_settings.COUNT_CACHE_TTL
                cache.set(key, (result.value, result.estimated), timeout=ttl)
                return result
            finally:
                cache.delete(f"{key}:lock")
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            time.sleep(self.poll)
            cached = cache.get(key)
            if cached is not None:
                return CountResult(*cached)
        return self.fallback.count(queryset)
