"""``python -m bench.serialization``: N products serialized, in one process, flat and nested.

Two sections, each from a queryset of the first N products, newest first, each run timed
from the queries to the rendered bytes:

- ``flat``: the product's own columns (``FlatProductSerializer``: a decimal, a choice, a
  foreign key's pk, a column through it, two datetimes rendered in the current time zone,
  ``FLAT_TIME_ZONE``, with DST and a UTC offset of zero half the year);
- ``nested``: the /api/ product list (brand, category, tags, review stats).

Implementations of each:

- ``drf``: the serializer on a planned queryset (select/prefetch, annotations), rendered by
  DRF's JSONRenderer;
- ``compiled``: its compiled read plan, rendered by ORJSONRenderer;
- ``floor``: hand-written values() + orjson (shop/floor.py's for nested);
- ``database``: its database plan (``drf_scale.sqljson``): PostgreSQL builds the JSON bytes;
- nested only: ``serpy`` and ``pydantic`` (Django Ninja's schema) on the same planned
  queryset, orjson; and ``queries``, the floor's two queries alone, no JSON: the share of
  the database in each run.

Runs are interleaved in a rotating order after a warm-up, each after a garbage collection;
the median of ``--repeat`` runs is reported (fewer past 10,000 rows, at least 5), with the
CPU each run spent on either side: this process (``app CPU``, ``time.process_time()``) and
the PostgreSQL backend serving its connection (``DB CPU``, from ``/proc/<pid>/stat``, as
bench.capacity reads it; a server on this machine only). The table replaces the marked
block of BENCHMARKS.md. The dataset lives in its own PostgreSQL database (``--database-url``),
seeded with ``manage.py seed`` once. ``--smoke``: 20 rows, 2 runs, no write.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.report import cpu_model, git_commit, memory_gib, replace_block
from bench.server import EXAMPLE, ROOT, ensure_database

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/drf_scale_serial"
SMOKE_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/drf_scale_serial_smoke"
BENCHMARKS = ROOT / "BENCHMARKS.md"
START = "<!-- bench:serialization:start -->"
END = "<!-- bench:serialization:end -->"
SECTIONS = ("flat", "nested")
# The flat section's current time zone: DST, and +00:00 (DRF's "Z") in winter.
FLAT_TIME_ZONE = "Europe/London"
FLAT_FIELDS = (
    "id", "sku", "name", "price", "status", "stock", "brand", "brand_name",
    "created_at", "updated_at",
)  # fmt: skip
# Past this many rows a size gets fewer runs (at least MIN_LARGE_REPEAT): DRF takes seconds.
LARGE = 10_000
MIN_LARGE_REPEAT = 5

Serialize = Callable[[int], bytes]
Clock = Callable[[], float]  # CPU seconds used so far


@dataclass
class Runs:
    """One implementation's timed runs: wall milliseconds, and CPU milliseconds per clock."""

    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)

    def mean_cpu(self, clock: str) -> float | None:
        runs = self.cpu_ms.get(clock)
        return statistics.fmean(runs) if runs else None


def setup_django(database_url: str, settings: str = "example.settings") -> None:
    """The reference service's settings (or ``settings``) on the benchmark database, DEBUG
    off."""
    os.environ.update(DATABASE_URL=database_url, DEBUG="0", DJANGO_SETTINGS_MODULE=settings)
    sys.path.insert(0, str(EXAMPLE))
    import django

    django.setup()


def prepare(products: int) -> None:
    """Migrate, and seed ``products`` products unless exactly that many exist."""
    from django.core.management import call_command

    from shop.models import Product

    call_command("migrate", verbosity=0)
    if Product.objects.count() != products:
        call_command("seed", products=products, seed=1, reset=True, verbosity=0)


@functools.cache
def flat_serializer() -> type:
    """The flat serializer: the product's own columns and its brand's name (one class, so its
    plans compile once)."""
    from rest_framework import serializers

    from shop.models import Product

    class FlatProductSerializer(serializers.ModelSerializer):
        brand_name = serializers.CharField(source="brand.name", read_only=True)

        class Meta:
            model = Product
            fields = list(FLAT_FIELDS)

    return FlatProductSerializer


def database_cpu_clock() -> Clock | None:
    """CPU seconds of the PostgreSQL backend serving the default connection, or None when
    that backend is not a process of this machine (another host, or not PostgreSQL)."""
    from django.db import connection

    # Imported here: bench.capacity imports this module.
    from bench.capacity import cpu_seconds

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    try:
        local = Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"postgres")
    except OSError:
        local = False
    return (lambda: cpu_seconds([pid])) if local else None


def clocks() -> dict[str, Clock]:
    """The CPU clocks read around each run: this process, and the database backend's."""
    found: dict[str, Clock] = {"app": time.process_time}
    if (database := database_cpu_clock()) is not None:
        found["db"] = database
    return found


def implementations(section: str = "nested") -> dict[str, Serialize]:
    """Each implementation of ``section``: the first ``n`` products, newest first, as JSON
    bytes. ``database`` only on PostgreSQL."""
    from django.db import connection

    from drf_scale.fast import compile_read_plan
    from drf_scale.renderers import ORJSONRenderer

    serializer_class = serializer_of(section)
    plan = compile_read_plan(serializer_class)
    assert plan.compiled, plan.fallback_reasons
    newest = newest_of(section)
    peers = flat_peers(newest) if section == "flat" else nested_peers(newest)

    def compiled(n: int) -> bytes:
        return ORJSONRenderer().render(plan.execute(newest[:n]))

    found = {"drf": peers.pop("drf"), "compiled": compiled, "floor": peers.pop("floor")}
    if connection.vendor == "postgresql":
        from drf_scale.sqljson import compile_database_plan

        database_plan = compile_database_plan(serializer_class)
        if (why := database_plan.unusable(newest)) is not None:  # no silent Python path
            raise SystemExit(f"{serializer_class.__name__} does not render in the database: {why}")

        def database(n: int) -> bytes:
            return database_plan.execute(newest[:n])

        found["database"] = database
    return found | peers


def serializer_of(section: str) -> type:
    from shop.api_serializers import ProductSerializer

    return flat_serializer() if section == "flat" else ProductSerializer


def newest_of(section: str):
    """The products, newest first: the queryset every implementation reads the first N of."""
    return serializer_of(section).Meta.model.objects.order_by("-created_at", "-id")


def python_rows(section: str, n: int) -> int:
    """How many of the first ``n`` rows the database plan leaves to Python (their values
    have no exact SQL rendering): they render through the compiled plan, in one more query."""
    from drf_scale.sqljson import JSON_COLUMN, compile_database_plan

    plan = compile_database_plan(serializer_of(section))
    return sum(row[JSON_COLUMN] is None for row in plan.rows(newest_of(section)[:n]))


def flat_peers(newest) -> dict[str, Serialize]:
    """DRF and the hand-written floor of the flat serializer."""
    import orjson
    from django.utils import timezone
    from rest_framework.renderers import JSONRenderer

    from drf_scale.planner import optimize

    serializer_class = flat_serializer()
    planned = optimize(newest, serializer_class)
    columns = [f"{name}_id" if name == "brand" else name for name in FLAT_FIELDS]
    columns[columns.index("brand_name")] = "brand__name"

    def drf(n: int) -> bytes:
        return JSONRenderer().render(serializer_class(planned[:n], many=True).data)

    def hand_written(n: int) -> bytes:
        zone = timezone.get_current_timezone()
        rows = newest.values_list(*columns)[:n]
        return orjson.dumps(
            [
                {
                    "id": pk,
                    "sku": sku,
                    "name": name,
                    "price": str(price),  # numeric(10, 2): already two places
                    "status": status,
                    "stock": stock,
                    "brand": brand,
                    "brand_name": brand_name,
                    "created_at": created.astimezone(zone),
                    "updated_at": updated.astimezone(zone),
                }
                for pk, sku, name, price, status, stock, brand, brand_name, created, updated in rows
            ],
            option=orjson.OPT_UTC_Z,
        )

    return {"drf": drf, "floor": hand_written}


def nested_peers(newest) -> dict[str, Serialize]:
    """DRF, the floor, serpy, pydantic and the floor's queries alone, of the /api/ list."""
    import orjson
    import serpy
    from pydantic import TypeAdapter
    from rest_framework.renderers import JSONRenderer

    from drf_scale.planner import optimize
    from shop import floor
    from shop.api_serializers import ProductSerializer
    from shop.models import Product
    from shop.ninja_api import ProductOut
    from shop.review_stats import REVIEW_STATS, rounded_rating

    planned = optimize(newest, ProductSerializer)

    def iso(moment: datetime) -> str:
        text = moment.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    class Brand(serpy.Serializer):
        id = serpy.IntField()
        name = serpy.StrField()

    class Category(serpy.Serializer):
        id = serpy.IntField()
        name = serpy.StrField()
        parent = serpy.Field(attr="parent_id")

    class Product_(serpy.Serializer):
        id = serpy.IntField()
        sku = serpy.StrField()
        name = serpy.StrField()
        price = serpy.MethodField()
        status = serpy.StrField()
        brand = Brand()
        category = Category()
        tags = Brand(attr="tags.all", call=True, many=True)
        review_count = serpy.IntField()
        rating_avg = serpy.MethodField()
        created_at = serpy.MethodField()
        updated_at = serpy.MethodField()

        def get_price(self, product: Product) -> str:
            return f"{product.price:.2f}"

        def get_rating_avg(self, product: Product) -> float | None:
            return rounded_rating(product.rating_avg)

        def get_created_at(self, product: Product) -> str:
            return iso(product.created_at)

        def get_updated_at(self, product: Product) -> str:
            return iso(product.updated_at)

    products_out = TypeAdapter(list[ProductOut])

    def drf(n: int) -> bytes:
        return JSONRenderer().render(ProductSerializer(planned[:n], many=True).data)

    def hand_written(n: int) -> bytes:
        rows = list(newest.values(*floor.COLUMNS, **REVIEW_STATS)[:n])
        return orjson.dumps(floor._products(rows), option=orjson.OPT_UTC_Z)

    def queries_only(n: int) -> bytes:
        rows = list(newest.values_list(*floor.COLUMNS, *REVIEW_STATS.values())[:n])
        through = Product.tags.through.objects.filter(product_id__in=[row[0] for row in rows])
        list(through.values_list("product_id", "tag_id", "tag__name").order_by("tag_id"))
        return b""

    def with_serpy(n: int) -> bytes:
        return orjson.dumps(Product_(planned[:n], many=True).data)

    def with_pydantic(n: int) -> bytes:
        items = products_out.validate_python(list(planned[:n]), from_attributes=True)
        return orjson.dumps(products_out.dump_python(items), default=str, option=orjson.OPT_UTC_Z)

    return {
        "drf": drf,
        "floor": hand_written,
        "serpy": with_serpy,
        "pydantic": with_pydantic,
        "queries": queries_only,
    }


def check_same_json(serializers: Mapping[str, Serialize], n: int) -> None:
    """Every implementation renders the JSON DRF renders: the comparison is fair."""
    import json

    expected = json.loads(serializers["drf"](n))
    for name, serialize in serializers.items():
        if name != "queries" and json.loads(serialize(n)) != expected:
            raise SystemExit(f"{name} does not render the same JSON as drf for {n} rows")


def measure_runs(
    serializers: Mapping[str, Serialize],
    n: int,
    repeat: int,
    cpu_clocks: Mapping[str, Clock] | None = None,
) -> dict[str, Runs]:
    """``repeat`` runs per implementation, interleaved in a rotating order: wall time, and
    the CPU time of each of ``cpu_clocks`` spent in the run."""
    cpu_clocks = cpu_clocks or {}
    names = list(serializers)
    runs = {name: Runs(cpu_ms={clock: [] for clock in cpu_clocks}) for name in names}
    for run in range(repeat):
        for name in names[run % len(names) :] + names[: run % len(names)]:
            gc.collect()  # no run pays for the garbage of the one before
            before = {clock: read() for clock, read in cpu_clocks.items()}
            start = time.perf_counter()
            serializers[name](n)
            runs[name].wall_ms.append((time.perf_counter() - start) * 1000)
            for clock, read in cpu_clocks.items():
                runs[name].cpu_ms[clock].append((read() - before[clock]) * 1000)
    return runs


def measure(serializers: Mapping[str, Serialize], n: int, repeat: int) -> dict[str, list[float]]:
    """Milliseconds of ``repeat`` runs per implementation, interleaved in a rotating order."""
    return {name: runs.wall_ms for name, runs in measure_runs(serializers, n, repeat).items()}


def repeat_for(n: int, repeat: int) -> int:
    """Runs at ``n`` rows: ``repeat``, fewer past LARGE rows (never under MIN_LARGE_REPEAT)."""
    return min(repeat, max(MIN_LARGE_REPEAT, repeat * LARGE // n))


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(results: Mapping[int, Mapping[str, Runs]]) -> str:
    lines = [
        "| rows | implementation | median ms | min ms | max ms | app CPU ms | DB CPU ms "
        "| DRF / this | this / floor |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, runs in results.items():
        drf = statistics.median(runs["drf"].wall_ms)
        floor = statistics.median(runs["floor"].wall_ms)
        for name, its in runs.items():
            median = statistics.median(its.wall_ms)
            lines.append(
                f"| {n:,} | {name} | {median:.1f} | {min(its.wall_ms):.1f} "
                f"| {max(its.wall_ms):.1f} | {_cpu(its.mean_cpu('app'))} "
                f"| {_cpu(its.mean_cpu('db'))} | {drf / median:.2f}x | {median / floor:.2f}x |"
            )
    return "\n".join(lines)


def ratio(runs: Mapping[str, Runs], name: str) -> float:
    """How many times faster than DRF ``name`` ran (medians)."""
    return statistics.median(runs["drf"].wall_ms) / statistics.median(runs[name].wall_ms)


def left_to_python(counts: Mapping[int, int]) -> str:
    """The line under a table: the rows ``database`` left to Python, per size."""
    if not counts:
        return ""
    each = "; ".join(f"{left:,} of {n:,}" for n, left in counts.items())
    return f"\n\nRows `database` left to Python (rendered by the compiled plan): {each}."


def block(results: Mapping[str, Section], command: str, repeat: int) -> str:
    """The Markdown between the markers: facts, command and one table per section."""
    import django
    import rest_framework
    from django.db import connection

    version = ".".join(map(str, connection.get_database_version()))
    database = f"{connection.display_name} {version}"
    sizes = sorted({n for section in results.values() for n in section.runs})
    runs_note = ", ".join(f"{repeat_for(n, repeat)} at {n:,} rows" for n in sizes)
    titles = {
        "flat": f"Flat list (`FlatProductSerializer`: 10 columns, brand name through a join, "
        f"datetimes in {FLAT_TIME_ZONE})",
        "nested": "Nested list (the /api/ `ProductSerializer`: brand and category to-one, "
        "tags to-many, review count and average as annotations)",
    }
    tables = "\n\n".join(
        f"#### {titles[section]}\n\n{table(its.runs)}{left_to_python(its.python_rows)}"
        for section, its in results.items()
    )
    return f"""### Serialization (one process, no HTTP)

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{git_commit(ROOT)}` with `{command}`.

- Machine: {os.cpu_count()} cores ({cpu_model()}), {memory_gib():.1f} GiB memory; \
load average {os.getloadavg()[0]:.2f} after the run
- Software: Python {platform.python_version()}, Django {django.get_version()}, \
DRF {rest_framework.VERSION}, {database} (on the same machine)
- Each run: the first N products of the seeded catalog, newest first, from the queries to \
the JSON bytes; median of interleaved runs after a warm-up ({runs_note}). \
`app CPU ms`: this process's CPU per run (mean); `DB CPU ms`: the CPU of the PostgreSQL \
backend serving the queries per run (mean; `/proc` counts in 10 ms ticks). `DRF / this`: \
how many times faster than DRF; `this / floor`: how many times slower than the \
hand-written floor. `database`: the JSON built by PostgreSQL (`drf_scale.sqljson`).

{tables}"""


@dataclass
class Section:
    """One section's results: runs per size and implementation, and per size how many rows
    the database plan left to Python (empty without a ``database`` implementation)."""

    runs: dict[int, dict[str, Runs]] = field(default_factory=dict)
    python_rows: dict[int, int] = field(default_factory=dict)


def run_section(
    section: str, rows: list[int], repeat: int, cpu_clocks: Mapping[str, Clock]
) -> Section:
    """Each size of ``section``: the same-JSON check (also the warm-up), then the runs."""
    from django.utils import timezone

    serializers = implementations(section)
    results = Section()
    with timezone.override(FLAT_TIME_ZONE if section == "flat" else None):
        for n in rows:
            print(f"bench.serialization: {section}, {n:,} rows", file=sys.stderr, flush=True)
            check_same_json(serializers, n)
            results.runs[n] = measure_runs(serializers, n, repeat_for(n, repeat), cpu_clocks)
            if "database" in serializers:
                results.python_rows[n] = python_rows(section, n)
    return results


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,10000,100000", help="comma-separated row counts")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per implementation")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="comma-separated: flat, nested"
    )
    parser.add_argument("--database-url", help=f"default {DEFAULT_DATABASE_URL}")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument(
        "--smoke", action="store_true", help=f"20 rows, 2 runs, no write, on {SMOKE_DATABASE_URL}"
    )
    args = parser.parse_args(argv)
    args.sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    if not args.sections or set(args.sections) - set(SECTIONS):
        parser.error(f"--sections: choose from {','.join(SECTIONS)}")
    if args.smoke:
        args.rows, args.repeat, args.no_write = "20", 2, True
    args.rows = [int(n) for n in args.rows.split(",")]
    args.database_url = args.database_url or (
        SMOKE_DATABASE_URL if args.smoke else DEFAULT_DATABASE_URL
    )
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    ensure_database(args.database_url)
    setup_django(args.database_url)
    prepare(max(args.rows))
    cpu_clocks = clocks()
    results = {
        section: run_section(section, args.rows, args.repeat, cpu_clocks)
        for section in args.sections
    }
    command = "python -m bench.serialization " + " ".join(argv)
    content = block(results, command.strip(), args.repeat)
    print(content)
    if not args.no_write:
        text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
        BENCHMARKS.write_text(replace_block(text, content, START, END))


if __name__ == "__main__":
    main()
