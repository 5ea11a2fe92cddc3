"""``python -m bench.replicas``: list and detail read through a streaming replica, against the
primary alone, side by side in one run.

A private PostgreSQL primary and a streaming replica of it (``tests/faults/cluster.py``:
``initdb``, ``pg_basebackup -R``) on free ports of this machine, seeded with the reference
shop; the service under gunicorn (2 sync workers, the representation cache off, so that every
read reaches a database) twice: with ``REPLICA_URLS`` (reads on the replica) and without it
(the primary alone). wrk loads the list (``/api/products/?page_size=20``) and the detail of a
fixed sample of products. Per row: requests/s, p50 and p99, the queries of one request
(Server-Timing), and the share of the transactions each database committed during the run
(``pg_stat_database.xact_commit``; the replica's includes the router's position samples).

Both databases share this machine's cores: the table shows where reads go and what routing
costs, not the capacity a replica on a host of its own adds. The block replaces
``bench:replicas`` in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.__main__ import BENCHMARKS
from bench.load import LoadResult, ensure_wrk, probe, run_wrk
from bench.report import cpu_model, git_commit, memory_gib, replace_block, table_lines
from bench.serialization import setup_django
from bench.server import ROOT, serve, service_env

START = "<!-- bench:replicas:start -->"
END = "<!-- bench:replicas:end -->"
DATABASE = "shop"
TOKEN = "d" * 40
WORKERS = 2
LIST_PATH = "/api/products/?page_size=20"


@dataclass(frozen=True)
class Row:
    target: str  # "primary alone" or "with a replica"
    read: str  # "list" or "detail"
    load: LoadResult
    queries: int | None
    shares: dict[str, float]  # database -> share of the transactions committed


def commits(servers: dict[str, Any]) -> dict[str, int]:
    """The transactions committed in the shop's database so far, per server."""
    counts = {}
    for name, server in servers.items():
        with server.connect(DATABASE) as conn:
            row = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [DATABASE]
            ).fetchone()
        counts[name] = int(row[0]) if row else 0
    return counts


def measure(
    wrk: str, url: str, paths: Path, servers: dict[str, Any], args: argparse.Namespace
) -> tuple[LoadResult, dict[str, float]]:
    """Warm up, then load ``paths``; what wrk measured and each server's share of commits."""
    run_wrk(wrk, url, paths, args.connections, args.warmup)
    before = commits(servers)
    load = run_wrk(wrk, url, paths, args.connections, args.seconds)
    after = commits(servers)
    done = {name: after[name] - before[name] for name in after}
    total = sum(done.values()) or 1
    return load, {name: count / total for name, count in done.items()}


HEADER = ("read", "served by", "req/s", "p50 ms", "p99 ms", "queries per request",
          "primary's share", "replica's share")  # fmt: skip


def table(rows: list[Row]) -> str:
    lines = table_lines(HEADER, 2)
    for row in rows:
        latency = row.load.latency_ms
        lines.append(
            f"| {row.read} | {row.target} | {row.load.rps:,.0f} | {latency['p50']:.1f} "
            f"| {latency['p99']:.1f} | {row.queries} | {row.shares['primary']:.0%} "
            f"| {row.shares['replica']:.0%} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace, command: str) -> list[Row]:
    setup_django("sqlite:///:memory:")  # the tests' helpers import the example's modules
    from tests.faults.cluster import PostgresCluster, private_dir, serve_shop

    wrk = ensure_wrk()
    directories = [private_dir("bench-primary"), private_dir("bench-replica")]
    primary = PostgresCluster(directories[0])
    replica = None
    rows: list[Row] = []
    try:
        serve_shop(primary, DATABASE, args.products, TOKEN)
        replica = primary.standby(directories[1])
        servers = {"primary": primary, "replica": replica}
        with tempfile.TemporaryDirectory() as work:
            paths = {"list": Path(work, "list.txt"), "detail": Path(work, "detail.txt")}
            paths["list"].write_text(LIST_PATH + "\n")
            ids = range(1, min(args.products, 200) + 1)
            paths["detail"].write_text("".join(f"/api/products/{pk}/\n" for pk in ids))
            base = {
                **service_env(primary.url(DATABASE)),
                "REPRESENTATION_CACHE": "off",
                "DB_MODE": "direct",
            }
            for name in ("REDIS_URL", "CELERY_BROKER_URL"):
                base.pop(name, None)
            targets = {
                "primary alone": base,
                "with a replica": {**base, "REPLICA_URLS": replica.url(DATABASE)},
            }
            for read in ("list", "detail"):
                for target, env in targets.items():
                    log = Path(work, f"{target}.log".replace(" ", "-"))
                    with serve(env, WORKERS, log) as url:
                        first = paths[read].read_text().splitlines()[0]
                        queries = probe(url + first).queries
                        load, shares = measure(wrk, url, paths[read], servers, args)
                    rows.append(Row(target, read, load, queries, shares))
    finally:
        if replica is not None:
            replica.stop("immediate")
        primary.stop("immediate")
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)
    return rows


def block(rows: list[Row], command: str, args: argparse.Namespace) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "### Reads through a streaming replica (one machine)",
            "",
            f"Measured {now} at commit `{git_commit(ROOT)}` with `{command}`.",
            "",
            f"- Machine: {os.cpu_count()} cores ({cpu_model()}), {memory_gib():.1f} GiB memory;"
            f" load average {os.getloadavg()[0]:.2f} after the run",
            f"- A private primary and its streaming replica on this machine, {args.products:,}"
            f" products; gunicorn, {WORKERS} sync workers, the representation cache off; wrk,"
            f" {args.connections} connections, {args.seconds} s after {args.warmup} s of warm-up",
            "- Shares: of the transactions each database committed during the run"
            " (`pg_stat_database`); the replica's include the router's position samples.",
            "",
            table(rows),
            "",
            "Both databases share the machine's two cores, so requests/s say what routing costs"
            " a request, not what a replica on a host of its own adds: that needs two machines.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    command = "python -m bench.replicas " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = run(args, command.strip())
    content = block(rows, command.strip(), args)
    print(content)
    if not args.no_write:
        text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
        BENCHMARKS.write_text(replace_block(text, content, START, END))
    failed = [f"{row.read} {row.target}" for row in rows if row.load.error_count or not row.load.ok]
    if failed:
        print(f"bench.replicas: failed requests in {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
