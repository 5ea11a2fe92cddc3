"""``python -m bench``: load every scenario x target and report the results.

Run from the repository root. ``--smoke`` checks that the harness still works
end to end on a tiny SQLite dataset, without touching BENCHMARKS.md.
"""

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.load import (
    DEPTHS,
    LIST_PAGE_SIZE,
    SCENARIOS,
    TARGETS,
    THREADS,
    Row,
    clamp_depths,
    ensure_wrk,
    first_result_id,
    plan_rows,
    probe,
    run_wrk,
    serves,
    service_variant,
)
from bench.report import (
    Facts,
    Result,
    cpu_model,
    git_commit,
    markdown_block,
    markdown_table,
    memory_gib,
    software_versions,
    to_json,
    write_benchmarks,
    write_chart,
)
from bench.server import (
    ROOT,
    DeepPage,
    deep_pages,
    ensure_database,
    prepare_dataset,
    serve,
    service_env,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/drf_scale_bench"
RESULTS = ROOT / "bench" / "results"
BENCHMARKS = ROOT / "BENCHMARKS.md"
SMOKE = {"products": 300, "duration": 1, "warmup": 1, "connections": 8, "depths": [0, 100]}
REAL = {
    "products": 100_000,
    "duration": 10,
    "warmup": 2,
    "connections": 32,
    "depths": list(DEPTHS),
}


def choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated list of names from ``allowed``."""

    def parse(value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}")
        return names

    return parse


def depth_list(value: str) -> list[int]:
    """An argparse type: comma-separated row counts, multiples of the list page size."""
    try:
        depths = [int(item) for item in value.split(",") if item.strip()]
    except ValueError:
        depths = []
    if not depths or any(d < 0 or d % LIST_PAGE_SIZE for d in depths):
        raise argparse.ArgumentTypeError(f"non-negative multiples of {LIST_PAGE_SIZE}")
    return depths


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--products", type=int, help="dataset size (default 100000; smoke 300)")
    parser.add_argument("--duration", type=int, help="seconds per row (default 10; smoke 1)")
    parser.add_argument("--warmup", type=int, help="warm-up seconds per row (default 2; smoke 1)")
    parser.add_argument("--connections", type=int, help="wrk connections (default 32; smoke 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument(
        "--database-url",
        help=f"default {DEFAULT_DATABASE_URL}; smoke: a temporary SQLite file",
    )
    parser.add_argument("--scenarios", type=choices(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--targets", type=choices(TARGETS), default=list(TARGETS))
    parser.add_argument(
        "--depths",
        type=depth_list,
        help="rows before the page of the deep scenario, skipped when past the dataset "
        f"(default {','.join(map(str, DEPTHS))}; smoke 0,100)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny dataset, short runs, results in a temporary directory; "
        "fails when the server does not start or a row has no 2xx response",
    )
    args = parser.parse_args(argv)
    if not any(serves(s, t) for s in args.scenarios for t in args.targets):
        parser.error("no target of --targets serves any of --scenarios")
    defaults = SMOKE if args.smoke else REAL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def check_deep_pages(base_url: str, rows: list[Row], pages: dict[int, DeepPage]) -> None:
    """Fail unless each deep page starts at the row at its depth."""
    for row in rows:
        if row.depth is None:
            continue
        found = first_result_id(base_url + row.paths[0])
        if found != pages[row.depth].first_id:
            raise RuntimeError(
                f"deep {row.target} @ {row.depth:,}: {row.paths[0]} starts at id {found}, "
                f"not at id {pages[row.depth].first_id} (the row at offset {row.depth:,})"
            )


def database_backends(database_url: str) -> list[int]:
    """The pids of the PostgreSQL backends connected to ``database_url``'s database (the
    service's kept connections), when they are processes of this machine; else []."""
    if not database_url.startswith("postgres"):
        return []
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows if Path(f"/proc/{pid}").exists()]


def backends_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds each live process of ``pids`` has used so far."""
    from bench.capacity import cpu_seconds  # bench.capacity imports this module

    return {pid: cpu_seconds([pid]) for pid in pids}


def db_cpu_per_request(database_url: str, before: dict[int, float], requests: int) -> float | None:
    """CPU ms per request the database's backends spent since ``before`` (their CPU seconds
    then): a backend started since counts from zero; one closed since (a connection past its
    CONN_MAX_AGE) is not counted, so a figure may fall short, never below zero."""
    if not before or not requests:
        return None
    after = backends_cpu(database_backends(database_url))
    spent = sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())
    return spent * 1000 / requests


def server_rows(rows: list[Row]) -> dict[str, list[int]]:
    """The indexes of ``rows`` per server: the shared one ("") first, then each variant's."""
    groups: dict[str, list[int]] = {"": []}
    for index, row in enumerate(rows):
        groups.setdefault(row.target if service_variant(row.target) else "", []).append(index)
    return {name: indexes for name, indexes in groups.items() if indexes}


def measure(
    args: argparse.Namespace,
    wrk: str,
    env: dict[str, str],
    rows: list[Row],
    pages: dict[int, DeepPage],
    log: Path,
    workdir: Path,
) -> list[Result]:
    """Serve the service (a variant target: a server of its own, its log beside ``log``) and
    load each row: warm-up, probe, measured run. Results in the order of ``rows``."""
    results: dict[int, Result] = {}
    for variant, indexes in server_rows(rows).items():
        server_env = {**env, **service_variant(variant)}
        server_log = log.with_name(f"{log.stem}-{variant}{log.suffix}") if variant else log
        with serve(server_env, args.workers, server_log) as base_url:
            check_deep_pages(base_url, [rows[i] for i in indexes], pages)
            for index in indexes:
                row = rows[index]
                paths_file = workdir / f"{index + 1}.paths"
                paths_file.write_text("\n".join(row.paths) + "\n")
                print(
                    f"[{index + 1}/{len(rows)}] {row.scenario} {row.label}",
                    file=sys.stderr,
                    flush=True,
                )
                run_wrk(wrk, base_url, paths_file, args.connections, args.warmup)
                # The probe queues behind what the warm-up left in the listen backlog,
                # so the measured run starts on a drained server.
                sample = probe(base_url + row.paths[0])
                before = backends_cpu(database_backends(env["DATABASE_URL"]))
                load = run_wrk(wrk, base_url, paths_file, args.connections, args.duration)
                db_cpu = db_cpu_per_request(env["DATABASE_URL"], before, load.requests)
                results[index] = Result(
                    row.scenario, row.target, row.paths[0], load, sample, row.depth, db_cpu
                )
    return [results[index] for index in range(len(rows))]


def run(args: argparse.Namespace, command: str, workdir: Path) -> int:
    """Measure, write the reports, and return the exit status."""
    wrk = ensure_wrk()
    timestamp = datetime.now(UTC)
    stamp = timestamp.strftime("%Y%m%dT%H%M%SZ")
    out_dir = workdir if args.smoke else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    database_url = args.database_url or (
        f"sqlite:///{workdir}/bench.sqlite3" if args.smoke else DEFAULT_DATABASE_URL
    )
    load_average = os.getloadavg()[0]  # what else ran on the machine as we started

    env = service_env(database_url)
    ensure_database(database_url)
    dataset = prepare_dataset(env, args.products)
    depths: list[int] = []
    if "deep" in args.scenarios:
        depths = clamp_depths(args.depths, dataset.products)
        if skipped := sorted(set(args.depths) - set(depths)):
            print(f"deep: skipping {skipped}, past {dataset.products:,} rows", file=sys.stderr)
    pages = deep_pages(env, depths)
    cursor_paths = {depth: page.path for depth, page in pages.items()}
    rows = plan_rows(args.scenarios, args.targets, dataset.ids, depths, cursor_paths)
    log = out_dir / f"{stamp}-gunicorn.log"
    results = measure(args, wrk, env, rows, pages, log, workdir)

    facts = Facts(
        timestamp=timestamp.strftime("%Y-%m-%d %H:%M UTC"),
        command=command,
        commit=git_commit(ROOT),
        cpu=cpu_model(),
        cores=os.cpu_count() or 0,
        memory_gib=round(memory_gib(), 1),
        load_average=load_average,
        os=f"{os.uname().sysname} {os.uname().release}",
        **software_versions(wrk),
        database=dataset.database,
        cache="Redis" if os.environ.get("REDIS_URL") else "local memory",
        products=dataset.products,
        detail_ids=len(dataset.ids),
        depths=depths,
        workers=args.workers,
        threads=min(THREADS, args.connections),
        connections=args.connections,
        duration_s=args.duration,
        warmup_s=args.warmup,
    )
    json_path = out_dir / f"{stamp}.json"
    json_path.write_text(to_json(facts, results))
    chart = out_dir / f"{stamp}.png"
    write_chart(facts, results, chart)
    latest = out_dir / "latest.png"
    shutil.copyfile(chart, latest)
    benchmarks = out_dir / "BENCHMARKS.md" if args.smoke else BENCHMARKS
    block = markdown_block(
        facts,
        results,
        chart=os.path.relpath(latest, benchmarks.parent),
        raw=os.path.relpath(json_path, benchmarks.parent),
    )
    write_benchmarks(benchmarks, block)

    print(markdown_table(results))
    kept = " (temporary, removed on exit)" if args.smoke else ""
    print(f"\nwrote {json_path}, {chart}, {latest}, {benchmarks}{kept}", file=sys.stderr)
    failed = [f"{r.scenario} {r.label}" for r in results if r.load.ok == 0]
    if failed:
        print(f"bench: no 2xx response from {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def entry(
    name: str,
    run_with: Callable[[argparse.Namespace, str, Path], int],
    parse: Callable[[list[str]], argparse.Namespace],
    argv: list[str] | None,
    errors: tuple[type[BaseException], ...] = (),
) -> int:
    """A bench command's main: parse, run in a temporary directory, report failures.

    SIGTERM unwinds like Ctrl-C, so the servers it started are stopped on the way out.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    command = shlex.join(["python", "-m", name, *argv])
    try:
        with tempfile.TemporaryDirectory(prefix=f"drf-scale-{name.replace('.', '-')}-") as work:
            return run_with(args, command, Path(work))
    except (RuntimeError, subprocess.CalledProcessError, psycopg.Error, *errors) as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return entry("bench", run, parse_args, argv)


if __name__ == "__main__":
    sys.exit(main())
