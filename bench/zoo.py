"""``python -m bench.zoo``: the zoo's serializer shapes (tests/zoo/), DRF vs drf_scale.

For each shape of ``tests.zoo.views.SHAPES`` (two HyperlinkedModelSerializers among them), the
first N rows of its view's queryset, as a plain user's list request sees them, from the
queries to the JSON bytes:

- ``drf``: the serializer as the view builds it, on the queryset planned by ``optimize``,
  rendered by DRF's JSONRenderer;
- ``drf_scale``: the serializer's read plan (``compile_read_plan``, or ``compile_read_plan_for``
  the serializer the view builds when its ``__init__`` shapes the fields per request),
  executed and rendered by ORJSONRenderer; a plan that does not compile renders through DRF
  on the planned queryset, with ORJSONRenderer, as the views do.

Both render the same JSON (checked first, which is also the warm-up); runs are interleaved
with ``bench.serialization.measure`` and the median of ``--repeat`` is reported with the
share of fields compiled, against the targets: at least 2x DRF where at least half the
fields compile, never slower than DRF (at most 1.05x its time) otherwise. The table replaces
the ``bench:zoo`` block of BENCHMARKS.md. The rows live in their own database
(``--database-url``), seeded once; ``--smoke`` runs a few rows of three shapes on an in-memory
SQLite database and writes nothing (about 15 s, most of it Django's start and migrations).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.report import cpu_model, git_commit, memory_gib, replace_block
from bench.serialization import BENCHMARKS, Serialize, check_same_json, measure, setup_django
from bench.server import ROOT, ensure_database

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/drf_scale_zoo"
START = "<!-- bench:zoo:start -->"
END = "<!-- bench:zoo:end -->"
SPEEDUP = 2.0  # the target where at least half the fields compile
SLOWDOWN = 1.05  # the most drf_scale may cost over DRF elsewhere


@dataclass
class Case:
    shape: str
    serializer: str
    coverage: float  # share of fields compiled: 0.0 renders through DRF
    implementations: dict[str, Serialize]


def prepare(rows: int) -> None:
    """Migrate, and seed the zoo with ``rows`` rows of each model unless that many exist."""
    from django.core.management import call_command

    from tests.fastapp.models import Device as Gadgetry
    from tests.testapp.models import Device
    from tests.zoo.data import make_zoo

    call_command("migrate", verbosity=0)
    if Device.objects.count() != rows or Gadgetry.objects.count() != rows:
        call_command("flush", interactive=False, verbosity=0)
        make_zoo(rows)


def target(coverage: float) -> str:
    return f">= {SPEEDUP:g}x" if coverage >= 0.5 else f">= {1 / SLOWDOWN:.2f}x"


def met(coverage: float, ratio: float) -> bool:
    return ratio >= (SPEEDUP if coverage >= 0.5 else 1 / SLOWDOWN)


def cases(smoke_limit: int | None = None, names: list[str] | None = None) -> list[Case]:
    """A DRF and a drf_scale rendering of each shape, for the zoo's plain user."""
    from django.contrib.auth import get_user_model
    from rest_framework.renderers import JSONRenderer
    from rest_framework.test import APIRequestFactory

    from drf_scale.fast import compile_read_plan, compile_read_plan_for
    from drf_scale.planner import optimize, queryset_of
    from drf_scale.renderers import ORJSONRenderer
    from tests.zoo.views import SHAPES

    user = get_user_model().objects.get(username="zoo-user")
    found = []
    for shape in [s for s in SHAPES if names is None or s.name in names][:smoke_limit]:
        view = shape.view(scale=False)(
            action_map={"get": "list"}, args=(), kwargs={}, format_kwarg=None
        )
        request = view.initialize_request(APIRequestFactory().get("/zoo/", shape.query))
        request.user = user
        view.request = request
        base = queryset_of(view.get_queryset())
        planned = optimize(base, shape.serializer)
        plan = compile_read_plan(shape.serializer)
        if not plan.compiled:  # its __init__ may shape the fields: as the view builds it
            plan = compile_read_plan_for(view.get_serializer(many=True))

        def drf(n: int, view: Any = view, planned: Any = planned) -> bytes:
            return JSONRenderer().render(view.get_serializer(planned[:n], many=True).data)

        def ours(n: int, view: Any = view, plan: Any = plan, base: Any = base) -> bytes:
            context = view.get_serializer_context()
            return ORJSONRenderer().render(plan.execute(base[:n], context))

        def ours_through_drf(n: int, view: Any = view, planned: Any = planned) -> bytes:
            return ORJSONRenderer().render(view.get_serializer(planned[:n], many=True).data)

        coverage = plan.coverage if plan.compiled else 0.0
        found.append(
            Case(
                shape.name,
                shape.serializer.__name__,
                coverage,
                {"drf": drf, "drf_scale": ours if plan.compiled else ours_through_drf},
            )
        )
    return found


def table(results: dict[tuple[str, int], tuple[Case, dict[str, list[float]]]]) -> str:
    lines = [
        "| shape | serializer | fields compiled | rows | DRF + plan ms | drf_scale ms "
        "| DRF / drf_scale | target | met |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for (_, n), (case, times) in results.items():
        drf, ours = statistics.median(times["drf"]), statistics.median(times["drf_scale"])
        ratio = drf / ours
        lines.append(
            f"| {case.shape} | {case.serializer} | {case.coverage:.0%} | {n:,} | {drf:.2f} "
            f"| {ours:.2f} | {ratio:.2f}x | {target(case.coverage)} "
            f"| {'yes' if met(case.coverage, ratio) else '**no**'} |"
        )
    return "\n".join(lines)


def verdict(results: dict[tuple[str, int], tuple[Case, dict[str, list[float]]]]) -> str:
    """One line: how many rows meet their target, and which do not."""
    missed = []
    for (_, n), (case, times) in results.items():
        ratio = statistics.median(times["drf"]) / statistics.median(times["drf_scale"])
        if not met(case.coverage, ratio):
            missed.append(f"{case.shape} at {n:,} rows ({ratio:.2f}x)")
    total = len(results)
    head = f"Targets met on {total - len(missed)} of {total} rows"
    return f"{head}; not met: {', '.join(missed)}." if missed else f"{head}."


def block(results: dict[Any, Any], command: str, repeat: int) -> str:
    import django
    import rest_framework
    from django.db import connection

    version = ".".join(map(str, connection.get_database_version()))
    return f"""### Serializer shapes (the zoo, one process, no HTTP)

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{git_commit(ROOT)}` with `{command}`.

- Machine: {os.cpu_count()} cores ({cpu_model()}), {memory_gib():.1f} GiB memory; \
load average {os.getloadavg()[0]:.2f} after the run
- Software: Python {platform.python_version()}, Django {django.get_version()}, \
DRF {rest_framework.VERSION}, {connection.display_name} {version}
- Each run: the first N rows of a shape of `tests/zoo/` as the zoo's plain user lists them, \
from the queries to the JSON bytes; `DRF + plan`: the serializer on the queryset `optimize` \
plans, DRF's JSONRenderer; `drf_scale`: the read plan executed (a plan that does not compile: \
DRF on the planned queryset), ORJSONRenderer. Median of {repeat} interleaved runs after a \
warm-up. Targets: at least {SPEEDUP:g}x DRF where at least half the fields compile, never \
slower than DRF (at most {SLOWDOWN}x its time) elsewhere.

{verdict(results)}

{table(results)}"""


def run(args: argparse.Namespace, database_url: str) -> None:
    rows = [int(n) for n in args.rows.split(",")]
    ensure_database(database_url)
    setup_django(database_url, "tests.settings")
    import logging

    logging.getLogger("drf_scale.fast").setLevel(logging.ERROR)  # the table names coverage
    from django.test import override_settings

    from tests.zoo.views import SETTINGS

    started = time.perf_counter()
    prepare(max(rows))
    print(f"bench.zoo: data ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    results = {}
    with override_settings(**SETTINGS):  # the zoo's URL names, MEDIA_URL
        names = args.shapes.split(",") if args.shapes else None
        for case in cases(3 if args.smoke else None, names):
            for n in rows:
                check_same_json(case.implementations, n)  # also the warm-up
                results[case.shape, n] = (case, measure(case.implementations, n, args.repeat))
    command = "python -m bench.zoo " + " ".join(args.argv)
    content = block(results, command.strip(), args.repeat)
    print(content)
    if not (args.no_write or args.smoke or args.shapes):
        text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
        BENCHMARKS.write_text(replace_block(text, content, START, END))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100,1000", help="comma-separated row counts")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per implementation")
    parser.add_argument("--database-url", default=None, help=f"default {DEFAULT_DATABASE_URL}")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--shapes", help="comma-separated shape names (default: all; no write)")
    parser.add_argument(
        "--smoke", action="store_true", help="3 shapes, 20 rows, in-memory SQLite, no write"
    )
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.smoke:
        args.rows, args.repeat = "20", 2
    run(args, args.database_url or ("sqlite://:memory:" if args.smoke else DEFAULT_DATABASE_URL))


if __name__ == "__main__":
    main()
