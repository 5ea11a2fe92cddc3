"""``python -m bench.counts``: ExactCount against EstimatedCount on the seeded catalog.

Three querysets of the products table (all of it, a filter on status and price, one
category) are each counted by ``ExactCount`` (``COUNT(*)``) and ``EstimatedCount`` (the
PostgreSQL planner's estimate), interleaved in a rotating order after a warm-up. The median
of ``--repeat`` runs is reported with the speed ratio and the estimate's error against the
exact count, and the table replaces the marked block of BENCHMARKS.md. The database must
already hold the products (``python -m bench`` seeds it); it is analyzed once, never seeded.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from bench.report import cpu_model, git_commit, memory_gib, replace_block
from bench.serialization import BENCHMARKS, setup_django
from bench.server import ROOT

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from drf_scale.counting import CountResult

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/drf_scale_bench"
START = "<!-- bench:counts:start -->"
END = "<!-- bench:counts:end -->"
SPEEDUP = 100.0  # the expectation: the estimate at least this many times faster...
TOLERANCE = 5.0  # ...and within this many percent of the exact count

Key = tuple[str, str]  # (queryset label, strategy name)


@dataclass(frozen=True)
class Row:
    """One queryset: both counts and the median milliseconds of each strategy."""

    label: str
    exact: int
    estimate: int
    estimated: bool  # False when EstimatedCount fell back to an exact count
    exact_ms: float
    estimated_ms: float

    @property
    def speedup(self) -> float:
        """How many times faster the estimate is than COUNT(*)."""
        return self.exact_ms / self.estimated_ms if self.estimated_ms else math.inf

    @property
    def error(self) -> float:
        """The estimate's error in percent of the exact count, signed."""
        if self.exact == 0:
            return 0.0 if self.estimate == 0 else math.inf
        return (self.estimate - self.exact) / self.exact * 100

    @property
    def verdict(self) -> str:
        """``yes``, or ``no`` with what the row misses of the expectation."""
        misses = []
        if not self.estimated:
            misses.append("fell back to exact")
        if self.speedup < SPEEDUP:
            misses.append(f"under {SPEEDUP:.0f}x")
        if abs(self.error) > TOLERANCE:
            misses.append(f"off by more than {TOLERANCE:.0f}%")
        return f"no ({', '.join(misses)})" if misses else "yes"


def querysets() -> dict[str, QuerySet[Any]]:
    """The three querysets by label; the category is the one with the most products."""
    from django.db.models import Count

    from shop.models import Product

    if not Product.objects.exists():
        raise SystemExit("bench.counts: no products; seed the database first (python -m bench)")
    by_category = Product.objects.values_list("category_id").annotate(n=Count("pk"))
    category, _ = by_category.order_by("-n", "category_id")[0]
    return {
        "Product.objects.all()": Product.objects.all(),
        'Product.objects.filter(status="active", price__gte=50)': Product.objects.filter(
            status=Product.Status.ACTIVE, price__gte=50
        ),
        f"Product.objects.filter(category_id={category})": Product.objects.filter(
            category_id=category
        ),
    }


def analyze() -> None:
    """Fresh planner statistics for the products table, once before measuring."""
    from django.db import connection

    from shop.models import Product

    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(Product._meta.db_table)}")


def measure(calls: Mapping[Key, Callable[[], object]], repeat: int) -> dict[Key, list[float]]:
    """Milliseconds of ``repeat`` runs per call, interleaved in a rotating order."""
    keys = list(calls)
    times: dict[Key, list[float]] = {key: [] for key in keys}
    for run in range(repeat):
        for key in keys[run % len(keys) :] + keys[: run % len(keys)]:
            start = time.perf_counter()
            calls[key]()
            times[key].append((time.perf_counter() - start) * 1000)
    return times


def make_rows(counted: dict[Key, CountResult], times: dict[Key, list[float]]) -> list[Row]:
    """One row per queryset label, from its counts and its timed runs."""
    labels = dict.fromkeys(label for label, _ in counted)
    return [
        Row(
            label,
            exact=counted[label, "exact"].value,
            estimate=counted[label, "estimated"].value,
            estimated=counted[label, "estimated"].estimated,
            exact_ms=statistics.median(times[label, "exact"]),
            estimated_ms=statistics.median(times[label, "estimated"]),
        )
        for label in labels
    ]


def table(rows: list[Row]) -> str:
    lines = [
        "| queryset | exact rows | estimate | error | ExactCount ms | EstimatedCount ms "
        f"| exact / estimated | ≥ {SPEEDUP:.0f}x and within {TOLERANCE:.0f}% |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| `{row.label}` | {row.exact:,} | {row.estimate:,}"
        f"{'' if row.estimated else ' (exact)'} | {row.error:+.2f}% | {row.exact_ms:.2f} "
        f"| {row.estimated_ms:.3f} | {row.speedup:,.0f}x | {row.verdict} |"
        for row in rows
    ]
    return "\n".join(lines)


def block(rows: list[Row], command: str, repeat: int) -> str:
    """The Markdown between the markers: facts, command and table."""
    from django.db import connection

    version = ".".join(map(str, connection.get_database_version()))
    return f"""### Count strategies (one process, no HTTP)

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{git_commit(ROOT)}` with `{command}`.

- Machine: {os.cpu_count()} cores ({cpu_model()}), {memory_gib():.1f} GiB memory; \
load average {os.getloadavg()[0]:.2f} after the run
- Database: {connection.display_name} {version}, {rows[0].exact:,} products, \
`ANALYZE` once before measuring
- Each cell: median of {repeat} interleaved runs after a warm-up, `count(queryset)` of \
`drf_scale.counting`; error = (estimate - exact) / exact. The issue expects the estimate \
at least {SPEEDUP:.0f}x faster and within {TOLERANCE:.0f}%.

{table(rows)}"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per count")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    setup_django(args.database_url)
    from drf_scale.counting import EstimatedCount, ExactCount

    strategies = {"exact": ExactCount(), "estimated": EstimatedCount()}
    analyze()
    calls = {
        (label, name): partial(strategy.count, queryset)
        for label, queryset in querysets().items()
        for name, strategy in strategies.items()
    }
    counted = {key: call() for key, call in calls.items()}  # the counts, and the warm-up
    results = make_rows(counted, measure(calls, args.repeat))
    command = "python -m bench.counts " + " ".join(sys.argv[1:] if argv is None else argv)
    content = block(results, command.strip(), args.repeat)
    print(content)
    for row in results:
        print(f"meets the expectation: {row.verdict}: {row.label}")
    if not args.no_write:
        text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
        BENCHMARKS.write_text(replace_block(text, content, START, END))


if __name__ == "__main__":
    main()
