"""``python -m bench.connections``: how the service holds its connections, under load.

Three measurements, each on the reference service served by gunicorn (2 processes) and
loaded by wrk, the servers always stopped on the way out:

1. I/O-bound: the shipping quote with the upstream at 100 ms, 200 connections, ASGI
   (uvicorn workers) against WSGI (sync workers); the issue expects at least 10x.
2. A simple ORM endpoint (``/floor/products/<id>/``) under sync workers: persistent
   connections (DB_MODE=direct, CONN_MAX_AGE 60) and psycopg's pool (DB_MODE=pool)
   against a new connection per request (CONN_MAX_AGE 0, from a settings module of
   this benchmark); the issue expects at least 2x.
3. The connection storm: 500 connections on ``/api/products/?page_size=20`` under ASGI
   through PgBouncer (transaction mode, 20 server connections), the server connections
   of the database sampled in pg_stat_activity every 0.2 s; the issue expects no
   errors and at most 20 connections.

The database must already hold the products (``python -m bench`` seeds it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from bench.load import LoadResult, ensure_wrk, run_wrk
from bench.report import cpu_model, git_commit, memory_gib, replace_block
from bench.server import ASGI_APP, EXAMPLE, ROOT, WSGI_APP, serve

DIRECT_URL = "postgres://postgres@127.0.0.1:5432/drf_scale_bench"
PGBOUNCER_URL = "postgres://postgres@127.0.0.1:6432/drf_scale_bench"
BENCHMARKS = ROOT / "BENCHMARKS.md"
START = "<!-- bench:connections:start -->"
END = "<!-- bench:connections:end -->"
WORKERS = 2
WARMUP_S = 2
# Few, so the warm-up leaves no backlog of queued requests in front of the measured run.
WARMUP_CONNECTIONS = 4
UPSTREAM_LATENCY_S = 0.1
IO_CONNECTIONS, ORM_CONNECTIONS, STORM_CONNECTIONS = 200, 8, 500
PGBOUNCER_SERVER_CONNECTIONS = 20
ORM_IDS = 1000
SAMPLE_EVERY_S = 0.2
NO_PERSISTENT_SETTINGS = """from example.settings import *  # noqa: F403

DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
"""


@dataclass(frozen=True)
class Run:
    """One served configuration and what wrk measured on it."""

    label: str
    load: LoadResult
    peak_connections: int | None = None


@contextmanager
def peak_connections(database_url: str) -> Iterator[list[int]]:
    """Sample the server connections to the database of ``database_url`` every 0.2 s on
    PostgreSQL itself (from the ``postgres`` database, not counted); yields [peak]."""
    name = urlsplit(database_url).path.lstrip("/")
    admin_url = urlsplit(database_url)._replace(path="/postgres").geturl()
    peak, stop = [0], threading.Event()
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
        "AND backend_type = 'client backend'"
    )

    def sample() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(query, [name]).fetchone()
                peak[0] = max(peak[0], row[0] if row else 0)
                stop.wait(SAMPLE_EVERY_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join(timeout=5)


def measure(
    label: str,
    app: Sequence[str],
    env: Mapping[str, str],
    paths: list[str],
    connections: int,
    seconds: int,
    work: Path,
    *,
    sample_url: str | None = None,
) -> Run:
    """Serve, warm up, load for ``seconds``; optionally sample the database's connections."""
    wrk = ensure_wrk()
    slug = "".join(c if c.isalnum() else "-" for c in label)
    paths_file = work / f"{slug}.paths"
    paths_file.write_text("\n".join(paths) + "\n")
    with serve(env, WORKERS, work / f"{slug}.log", app) as base_url:
        run_wrk(wrk, base_url, paths_file, min(connections, WARMUP_CONNECTIONS), WARMUP_S)
        if sample_url is None:
            return Run(label, run_wrk(wrk, base_url, paths_file, connections, seconds))
        with peak_connections(sample_url) as peak:
            load = run_wrk(wrk, base_url, paths_file, connections, seconds)
        return Run(label, load, peak[0])


def sample_ids(database_url: str, count: int) -> tuple[int, list[int]]:
    """The product count and the first ``count`` ids; fails when there are no products."""
    with psycopg.connect(database_url) as conn:
        total = conn.execute("SELECT count(*) FROM shop_product").fetchone()
        rows = conn.execute("SELECT id FROM shop_product ORDER BY id LIMIT %s", [count]).fetchall()
    if not total or not rows:
        raise SystemExit(f"no products in {database_url}: seed it with python -m bench first")
    return total[0], [row[0] for row in rows]


def ratio(a: Run, b: Run) -> str:
    return f"{a.load.rps / b.load.rps:.1f}x" if b.load.rps else "-"


def table(runs: list[Run], storm: bool = False) -> list[str]:
    head = "| configuration | requests | req/s (2xx) | p50 ms | p99 ms | errors |"
    rule = "| --- | ---: | ---: | ---: | ---: | ---: |"
    if storm:
        head, rule = head + " peak server connections |", rule + " ---: |"
    lines = [head, rule]
    for r in runs:
        line = (
            f"| {r.label} | {r.load.requests:,} | {r.load.rps:,.1f} "
            f"| {r.load.latency_ms['p50']:.1f} | {r.load.latency_ms['p99']:.1f} "
            f"| {r.load.error_count:,} |"
        )
        lines.append(line + (f" {r.peak_connections} |" if storm else ""))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per run")
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args(argv)
    seconds: int = args.duration

    products, ids = sample_ids(DIRECT_URL, ORM_IDS)
    base = {**os.environ, "DEBUG": "0"}
    pgbouncer = {**base, "DATABASE_URL": PGBOUNCER_URL, "DB_MODE": "pgbouncer"}
    direct = {**base, "DATABASE_URL": DIRECT_URL, "SERVER_MODE": "wsgi"}
    with tempfile.TemporaryDirectory(prefix="bench-connections-") as tmp:
        work = Path(tmp)
        (work / "bench_no_persistent.py").write_text(NO_PERSISTENT_SETTINGS)
        pythonpath = os.pathsep.join(
            p for p in [str(work), str(EXAMPLE), os.environ.get("PYTHONPATH", "")] if p
        )

        sys.path.insert(0, str(EXAMPLE))  # the upstream stand-in lives in example/
        from upstream import running

        quote = [f"/api/products/{ids[0]}/shipping-quote/?dest=FR"]
        with running(latency=UPSTREAM_LATENCY_S) as upstream_url:
            io_env = {**pgbouncer, "UPSTREAM_URL": upstream_url}
            io = [
                measure(
                    label,
                    app,
                    {**io_env, "SERVER_MODE": mode},
                    quote,
                    IO_CONNECTIONS,
                    seconds,
                    work,
                )
                for label, app, mode in [
                    ("ASGI, uvicorn workers", ASGI_APP, "asgi"),
                    ("WSGI, sync workers", WSGI_APP, "wsgi"),
                ]
            ]

        detail = [f"/floor/products/{pk}/" for pk in ids]
        orm = [
            measure(label, WSGI_APP, env, detail, ORM_CONNECTIONS, seconds, work)
            for label, env in [
                ("persistent (direct, CONN_MAX_AGE 60)", {**direct, "DB_MODE": "direct"}),
                ("psycopg pool (pool)", {**direct, "DB_MODE": "pool"}),
                (
                    "new connection per request (CONN_MAX_AGE 0)",
                    {
                        **direct,
                        "DB_MODE": "direct",
                        "PYTHONPATH": pythonpath,
                        "DJANGO_SETTINGS_MODULE": "bench_no_persistent",
                    },
                ),
            ]
        ]

        storm = measure(
            "ASGI, uvicorn workers, PgBouncer",
            ASGI_APP,
            {**pgbouncer, "SERVER_MODE": "asgi"},
            ["/api/products/?page_size=20"],
            STORM_CONNECTIONS,
            seconds,
            work,
            sample_url=DIRECT_URL,
        )

    command = "python -m bench.connections " + " ".join(argv if argv is not None else sys.argv[1:])
    peak = storm.peak_connections or 0
    storm_ok = storm.load.error_count == 0 and peak <= PGBOUNCER_SERVER_CONNECTIONS
    block = "\n".join(
        [
            "### Connections: ASGI against WSGI, persistent against per-request, the storm",
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit "
            f"`{git_commit(ROOT)}` with `{command.strip()}`.",
            "",
            f"- Machine: {os.cpu_count()} cores ({cpu_model()}), {memory_gib():.1f} GiB memory; "
            f"load average {os.getloadavg()[0]:.2f} after the run",
            f"- gunicorn, {WORKERS} processes per configuration; wrk, 2 threads, --timeout 30s, "
            f"{seconds} s per run after a {WARMUP_S} s warm-up on {WARMUP_CONNECTIONS} "
            "connections, on the same machine; "
            f"{products:,} products in PostgreSQL, PgBouncer in transaction mode with "
            f"{PGBOUNCER_SERVER_CONNECTIONS} server connections",
            "- errors = socket errors and timeouts plus non-2xx responses",
            "",
            f"**1. I/O-bound**: `GET /api/products/<id>/shipping-quote/?dest=FR`, upstream "
            f"latency {UPSTREAM_LATENCY_S * 1000:.0f} ms, {IO_CONNECTIONS} connections, "
            f"via PgBouncer. ASGI / WSGI: **{ratio(io[0], io[1])}** (issue expects ≥ 10x).",
            "",
            *table(io),
            "",
            f"**2. ORM endpoint**: `GET /floor/products/<id>/` over {len(ids):,} ids, sync "
            f"workers, {ORM_CONNECTIONS} connections, PostgreSQL directly. Persistent / new "
            f"connection per request: **{ratio(orm[0], orm[2])}**, pool / new: "
            f"**{ratio(orm[1], orm[2])}** (issue expects ≥ 2x).",
            "",
            *table(orm),
            "",
            f"**3. Connection storm**: `GET /api/products/?page_size=20`, {STORM_CONNECTIONS} "
            "connections, ASGI through PgBouncer (DB_MODE=pgbouncer); peak = most client "
            f"backends of the database in pg_stat_activity, sampled every {SAMPLE_EVERY_S} s. "
            f"Zero errors and ≤ {PGBOUNCER_SERVER_CONNECTIONS} connections: "
            f"**{'yes' if storm_ok else 'no'}**.",
            "",
            *table([storm], storm=True),
        ]
    )
    print(block)
    if not args.no_write:
        text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
        BENCHMARKS.write_text(replace_block(text, block, START, END))


if __name__ == "__main__":
    main()
