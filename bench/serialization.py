"""``python -m bench.serialization``: N nested products serialized five ways, in one process.

The same JSON (the /api/ product list: brand, category, tags, review stats) from a queryset of
the first N products, each run timed from the queries to the rendered bytes:

- ``drf``: the api ProductSerializer on a planned queryset (select/prefetch, annotations),
  rendered by DRF's JSONRenderer;
- ``compiled``: its compiled read plan, rendered by ORJSONRenderer;
- ``floor``: the hand-written values() + orjson of shop/floor.py;
- ``serpy`` and ``pydantic`` (Django Ninja's schema): on the same planned queryset, orjson.

- ``queries``: the floor's two queries alone, no JSON: the share of the database in each run.

Runs are interleaved in a rotating order after a warm-up, each after a garbage collection;
the median of ``--repeat`` runs is reported, and the table replaces the marked block of
BENCHMARKS.md. The dataset lives in its own PostgreSQL database (``--database-url``), seeded
with ``manage.py seed`` once.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench.report import cpu_model, git_commit, memory_gib, replace_block
from bench.server import EXAMPLE, ROOT, ensure_database

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/drf_scale_serial"
BENCHMARKS = ROOT / "BENCHMARKS.md"
START = "<!-- bench:serialization:start -->"
END = "<!-- bench:serialization:end -->"

Serialize = Callable[[int], bytes]


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


def implementations() -> dict[str, Serialize]:
    """Each implementation: the first ``n`` products, newest first, as JSON bytes."""
    import orjson
    import serpy
    from pydantic import TypeAdapter
    from rest_framework.renderers import JSONRenderer

    from drf_scale.fast import compile_read_plan
    from drf_scale.planner import optimize
    from drf_scale.renderers import ORJSONRenderer
    from shop import floor
    from shop.api_serializers import ProductSerializer
    from shop.models import Product
    from shop.ninja_api import ProductOut
    from shop.review_stats import REVIEW_STATS, rounded_rating

    newest = Product.objects.order_by("-created_at", "-id")
    planned = optimize(newest, ProductSerializer)
    plan = compile_read_plan(ProductSerializer)
    assert plan.compiled, plan.fallback_reasons

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

    def compiled(n: int) -> bytes:
        return ORJSONRenderer().render(plan.execute(newest[:n]))

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
        "compiled": compiled,
        "floor": hand_written,
        "serpy": with_serpy,
        "pydantic": with_pydantic,
        "queries": queries_only,
    }


def check_same_json(serializers: dict[str, Serialize], n: int) -> None:
    """Every implementation renders the JSON DRF renders: the comparison is fair."""
    import json

    expected = json.loads(serializers["drf"](n))
    for name, serialize in serializers.items():
        if name != "queries" and json.loads(serialize(n)) != expected:
            raise SystemExit(f"{name} does not render the same JSON as drf for {n} rows")


def measure(serializers: dict[str, Serialize], n: int, repeat: int) -> dict[str, list[float]]:
    """Milliseconds of ``repeat`` runs per implementation, interleaved in a rotating order."""
    names = list(serializers)
    times: dict[str, list[float]] = {name: [] for name in names}
    for run in range(repeat):
        for name in names[run % len(names) :] + names[: run % len(names)]:
            gc.collect()  # no run pays for the garbage of the one before
            start = time.perf_counter()
            serializers[name](n)
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def table(results: dict[int, dict[str, list[float]]]) -> str:
    lines = [
        "| rows | implementation | median ms | min ms | max ms | DRF / this | this / floor |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, times in results.items():
        drf, floor = statistics.median(times["drf"]), statistics.median(times["floor"])
        for name, runs in times.items():
            median = statistics.median(runs)
            lines.append(
                f"| {n:,} | {name} | {median:.1f} | {min(runs):.1f} | {max(runs):.1f} "
                f"| {drf / median:.2f}x | {median / floor:.2f}x |"
            )
    return "\n".join(lines)


def block(results: dict[int, dict[str, list[float]]], command: str, repeat: int) -> str:
    """The Markdown between the markers: facts, command and table."""
    import django
    import rest_framework
    from django.db import connection

    version = ".".join(map(str, connection.get_database_version()))
    database = f"{connection.display_name} {version}"
    return f"""### Serialization (one process, no HTTP)

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{git_commit(ROOT)}` with `{command}`.

- Machine: {os.cpu_count()} cores ({cpu_model()}), {memory_gib():.1f} GiB memory; \
load average {os.getloadavg()[0]:.2f} after the run
- Software: Python {platform.python_version()}, Django {django.get_version()}, \
DRF {rest_framework.VERSION}, {database}
- Each run: the first N products of the seeded catalog (brand, category, ~2 tags, review \
count and average as annotations), from the queries to the JSON bytes; median of {repeat} \
interleaved runs after a warm-up. `DRF / this`: how many times faster than DRF; \
`this / floor`: how many times slower than the hand-written floor.

{table(results)}"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,10000", help="comma-separated row counts")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per implementation")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    rows = [int(n) for n in args.rows.split(",")]

    ensure_database(args.database_url)
    setup_django(args.database_url)
    prepare(max(rows))
    serializers = implementations()
    results = {}
    for n in rows:
        check_same_json(serializers, n)  # also the warm-up
        results[n] = measure(serializers, n, args.repeat)
    command = "python -m bench.serialization " + " ".join(argv or sys.argv[1:])
    content = block(results, command.strip(), args.repeat)
    print(content)
    if not args.no_write:
        text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
        BENCHMARKS.write_text(replace_block(text, content, START, END))


if __name__ == "__main__":
    main()
