"""``python -m bench.capacity``: the per-core figures of the capacity model (docs/capacity.md).

One gunicorn process (1 worker, gthread, ``--threads`` threads) pinned to ONE core, wrk
pinned to the other(s); per endpoint kind, CPU seconds that process spent per request
(``/proc/<pid>/stat`` utime + stime of the process tree, before and after the run) and so
requests/s per core (1 / CPU s), next to the req/s it reached on that core. Kinds:

- detail, cached: ``/api/products/<id>/``, each sampled id fetched once before (cache hit);
- list, cached: ``/api/products/?page_size=20``, the rows from the representation cache;
- detail, miss: every product once from an empty Redis (FLUSHALL before the run), so each
  request misses and fills the cache (as long as the run makes fewer requests than products);
- edge hit: the cached detail through a private varnishd (pinned to the same core, default
  VCL, ``s-maxage`` of the service), varnishd's CPU per request and its hit ratio;
- write: ``PATCH /api/products/<id>/`` ``{"stock": 7}`` as the staff user (token), Celery on
  ``memory://`` (the aggregate refresh a write queues is a worker's, as with a real broker);
- detail, list, uncached: a second server with ``REPRESENTATION_CACHE=off``;
- write, no broker: a third server without a broker, the refresh runs in the request.

Per kind also: PostgreSQL CPU per request (the CPU of the database's client backends, whose
pids pg_stat_activity gives), queries and database ms per request (Server-Timing, median of
a few requests outside the load), Redis commands per request (``CONFIG RESETSTAT`` then
``INFO commandstats``) and Redis CPU per request, on a private redis-server; the database
connections the process held at most; ``redis-benchmark`` GET/SET on that redis-server,
pinned to one core. PostgreSQL is the shared server, with a database of this benchmark's
own (``bench_capacity``); ``--smoke`` runs it all tiny on SQLite and writes nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock
from urllib.parse import unquote, urlsplit

import psycopg
import redis

import bench.load
from bench.__main__ import BENCHMARKS, entry
from bench.cache import ALL_IDS, EXTENSIONS, LIST_PATH, lua_script
from bench.connections import peak_connections
from bench.load import LoadResult, ensure_wrk, parse_queries, run_wrk
from bench.report import cpu_model, git_commit, memory_gib, replace_block, table_lines
from bench.serialization import setup_django
from bench.server import (
    ROOT,
    free_port,
    manage,
    prepare_dataset,
    serve,
    service_env,
    wait_until_answering,
)
from bench.server import ensure_database as ensure_postgres_database

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_capacity"
START = "<!-- bench:capacity:start -->"
END = "<!-- bench:capacity:end -->"
VARNISHD = shutil.which("varnishd") or "/usr/sbin/varnishd"
REDIS_BENCHMARK = shutil.which("redis-benchmark")
SMOKE = {"products": 300, "duration": 1, "warmup": 1, "connections": 4, "ops": 5_000}
REAL = {"products": 10_000, "duration": 8, "warmup": 2, "connections": 16, "ops": 200_000}
SAMPLES = 15  # requests outside the load per kind, for queries and database ms
WRITE_BODY = b'{"stock": 7}'
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
OURS = ("info", "config")  # the commands this harness sends Redis
_VARNISH_COUNTERS = ("-f", "MAIN.cache_hit", "-f", "MAIN.cache_miss")
_DB_MS = re.compile(r"db;dur=([\d.]+)")
_TOKEN = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
print(Token.objects.get_or_create(user=get_user_model().objects.get(username="admin"))[0].key)
"""


# -- processes: CPU seconds and pinning -----------------------------------------------------


def _stat(pid: int) -> tuple[int, float]:
    """(parent pid, CPU seconds user + system) of a live process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant of it."""
    parents: dict[int, int] = {}
    for entry_ in Path("/proc").iterdir():
        if entry_.name.isdigit():
            try:
                parents[int(entry_.name)] = _stat(int(entry_.name))[0]
            except (OSError, IndexError):
                continue  # gone meanwhile
    tree = [root]
    for pid in tree:
        tree += [child for child, parent in parents.items() if parent == pid]
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system, all threads) the live ``pids`` have used so far."""
    total = 0.0
    for pid in pids:
        try:
            total += _stat(pid)[1]
        except OSError:
            continue
    return total


def pin(root: int, cores: set[int]) -> None:
    """Every thread of ``root`` and its descendants on ``cores``; threads they start later
    inherit it."""
    for pid in process_tree(root):
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), cores)
            except OSError:
                continue


def child_serving(port: int) -> int:
    """The pid of our child process whose command line names ``port`` (gunicorn's master)."""
    for pid in process_tree(os.getpid())[1:]:
        try:
            if f":{port}" in Path(f"/proc/{pid}/cmdline").read_text():
                return pid
        except OSError:
            continue
    raise RuntimeError(f"no process of ours serves port {port}")


# -- the measured services ------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of this run (``tests.test_cache_outage.RedisServer``): its commands and
    CPU seconds so far."""

    def __init__(self, directory: Path) -> None:
        from tests.test_cache_outage import RedisServer

        self.server = RedisServer(directory, persistent=False)
        self.url: str = self.server.url
        self.client = redis.Redis.from_url(self.url)

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def reset(self) -> None:
        self.client.config_resetstat()

    def commands(self) -> dict[str, int]:
        """Calls per command since the last reset, but for our own INFO and CONFIG."""
        stats = self.client.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()}
        return {name: n for name, n in calls.items() if name.split("|")[0] not in OURS}


@dataclass(frozen=True)
class Database:
    """The benchmark's PostgreSQL database: CPU seconds of its client backends so far."""

    url: str

    def backend_cpu(self) -> dict[int, float]:
        """CPU seconds of each client backend of the database (pg_stat_activity's pids)."""
        admin = urlsplit(self.url)._replace(path="/postgres").geturl()
        name = unquote(urlsplit(self.url).path.lstrip("/"))
        with psycopg.connect(admin, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                "AND backend_type = 'client backend'",
                [name],
            ).fetchall()
        return {row[0]: cpu_seconds([row[0]]) for row in rows}


@contextmanager
def varnish(backend_url: str, work: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private varnishd (default VCL, 64 MiB malloc) in front of ``backend_url``: its URL
    and process, stopped on the way out."""
    port, backend = free_port(), urlsplit(backend_url).netloc
    command = [VARNISHD, "-n", str(work / "varnish"), "-a", f"127.0.0.1:{port}"]
    command += ["-b", backend, "-s", "malloc,64m", "-F"]
    url, log_path = f"http://127.0.0.1:{port}", work / "varnishd.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        try:
            wait_until_answering(proc, url, log_path)
            yield url, proc
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def varnish_hits(work: Path) -> tuple[int, int]:
    """(hits, misses) of the private varnishd so far (varnishstat)."""
    out = subprocess.run(
        ["varnishstat", "-n", str(work / "varnish"), "-1", *_VARNISH_COUNTERS],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts = {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line.strip()}
    return counts.get("MAIN.cache_hit", 0), counts.get("MAIN.cache_miss", 0)


# -- one kind of request under load ---------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """An endpoint kind: its paths (round-robin), method, body and headers."""

    name: str
    paths: list[str]
    method: str = "GET"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    warm: bool = False  # fetch each path once before the warm-up
    cold: bool = False  # empty Redis (FLUSHALL) right before the measured run
    edge: bool = False  # through varnishd

    def lua(self, hits_file: Path) -> str:
        """The wrk script of bench.cache (its headers, X-Cache hits counted in ``hits_file``)
        with this kind's method and body."""
        lines = [lua_script(self.headers, 200, hits_file), f'wrk.method = "{self.method}"']
        if self.body is not None:
            lines.append(f"wrk.body = [==[{self.body.decode()}]==]")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Figure:
    """What one kind costs: the load on one core, and the CPU each process spent on it."""

    kind: str
    path: str
    load: LoadResult
    server_cpu_s: float  # the pinned process tree: gunicorn, or varnishd for the edge
    pg_cpu_s: float | None  # client backends of the database (None on SQLite)
    redis_cpu_s: float
    redis_commands: dict[str, int]  # calls per command during the run
    queries: int | None  # median over SAMPLES requests outside the load (Server-Timing)
    db_ms: float | None
    connections: int | None  # most client backends of the database during the run
    hit_ratio: float | None  # X-Cache: hit responses (varnish's hits for the edge), if told

    def per_request(self, value: float | None, scale: float = 1000) -> float | None:
        """``value`` (seconds or a count) per 2xx response, times ``scale``."""
        return None if value is None or not self.load.ok else value * scale / self.load.ok

    @property
    def rps_per_core(self) -> float:
        """What one core sustains of this kind, by CPU: 1 / CPU seconds per request."""
        return self.load.ok / self.server_cpu_s if self.server_cpu_s else 0.0

    @property
    def busy(self) -> float:
        """The share of the pinned core the server used during the run."""
        return self.server_cpu_s / self.load.duration_s if self.load.duration_s else 0.0


@dataclass(frozen=True)
class Sample:
    """One request outside the load: its status and Server-Timing figures."""

    status: int
    queries: int | None
    db_ms: float | None
    x_cache: str | None


def sample(url: str, kind: Kind) -> Sample:
    """Send one request of ``kind`` to ``url``; a non-2xx status is a Sample too."""
    request = urllib.request.Request(url, kind.body, dict(kind.headers), method=kind.method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers = response.status, response.headers
            response.read()
    except urllib.error.HTTPError as error:
        status, headers = error.code, error.headers
    timing = headers.get("Server-Timing")
    db = _DB_MS.search(timing or "")
    queries, db_ms = parse_queries(timing), float(db.group(1)) if db else None
    return Sample(status, queries, db_ms, headers.get("X-Cache"))


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds so far of the server tree, Redis and each database backend; edge hits."""

    server: float
    redis: float
    pg: dict[int, float] | None
    edge: tuple[int, int]  # varnish's (hits, misses)

    def pg_since(self, before: Snapshot) -> float | None:
        """The CPU the database's backends used since ``before`` (new backends from 0)."""
        if self.pg is None or before.pg is None:
            return None
        return sum(cpu - before.pg.get(pid, 0.0) for pid, cpu in self.pg.items())


@dataclass(frozen=True)
class Runner:
    """How kinds are loaded: wrk, its settings, and the processes whose CPU is counted."""

    wrk: str
    work: Path
    args: argparse.Namespace
    redis: PrivateRedis
    database: Database | None

    def measure(self, base_url: str, server_pid: int, kind: Kind) -> Figure:
        """Warm up, sample, load ``kind`` for the duration; CPU and Redis deltas of the run."""
        print(f"capacity: {kind.name}", file=sys.stderr, flush=True)
        slug = re.sub(r"\W+", "-", kind.name).strip("-")
        paths, script, hits_file = (self.work / f"{slug}.{ext}" for ext in EXTENSIONS)
        paths.write_text("\n".join(kind.paths) + "\n")
        script.write_text(kind.lua(hits_file))
        args = self.args
        with mock.patch.object(bench.load, "LUA_SCRIPT", script):
            run_wrk(self.wrk, base_url, paths, args.connections, args.warmup)
            if kind.cold:
                self.redis.client.flushall()
            # Cold: from the end of the paths, which the run (from the start) does not reach.
            probes = kind.paths[-SAMPLES:] if kind.cold else kind.paths[:SAMPLES]
            samples = [sample(base_url + path, kind) for path in probes]
            if bad := [s.status for s in samples if not 200 <= s.status < 300]:
                raise RuntimeError(f"{kind.name}: statuses {bad} outside the load")
            server = process_tree(server_pid)
            before = self.snapshot(server, kind.edge)
            self.redis.reset()
            peak = peak_connections(self.database.url) if self.database else nullcontext([0])
            with peak as most:
                load = run_wrk(self.wrk, base_url, paths, args.connections, args.duration)
            commands = self.redis.commands()
            after = self.snapshot(server, kind.edge)
        hits, misses = (a - b for a, b in zip(after.edge, before.edge, strict=True))
        told = {s.x_cache for s in samples} <= {"hit", "miss", "bypass"}  # not a list's "20/20 hit"
        if not kind.edge:
            hits, misses = (int(hits_file.read_text()), load.ok) if told else (0, 0)
            misses -= hits
        return Figure(
            kind=kind.name,
            path=f"{kind.method} {kind.paths[0]}",
            load=load,
            server_cpu_s=after.server - before.server,
            pg_cpu_s=after.pg_since(before),
            redis_cpu_s=after.redis - before.redis,
            redis_commands=commands,
            queries=0 if kind.edge else round(_median([s.queries for s in samples])),
            db_ms=0.0 if kind.edge else _median([s.db_ms for s in samples]),
            connections=most[0] if self.database else None,
            hit_ratio=hits / (hits + misses) if hits + misses else None,
        )

    def snapshot(self, server: list[int], edge: bool) -> Snapshot:
        """The CPU seconds of the server, Redis and the database's backends; varnish's hits."""
        return Snapshot(
            cpu_seconds(server),
            cpu_seconds([self.redis.pid]),
            self.database.backend_cpu() if self.database else None,
            varnish_hits(self.work) if edge else (0, 0),
        )


def _median(values: Iterable[float | None]) -> float:
    """The median of the values that are not None (0 when none is)."""
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else 0.0


def redis_benchmark(server: PrivateRedis, ops: int, core: set[int] | None) -> dict[str, float]:
    """GET and SET requests/s of ``redis-benchmark`` (50 clients, no pipelining) on the private
    Redis pinned to ``core``, and its commands per CPU second over the whole benchmark."""
    if REDIS_BENCHMARK is None:
        raise RuntimeError("redis-benchmark is not installed (apt-get install redis-tools)")
    if core:
        pin(server.pid, core)
    port = str(urlsplit(server.url).port)
    command = [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", port, "-t", "get,set", "-n", str(ops)]
    before = cpu_seconds([server.pid])
    out = subprocess.run([*command, "-c", "50", "--csv"], capture_output=True, text=True)
    cpu = cpu_seconds([server.pid]) - before
    rows = list(csv.DictReader(out.stdout.splitlines()))
    if out.returncode or not rows:
        raise RuntimeError(f"redis-benchmark failed:\n{out.stderr}{out.stdout}")
    figures = {f"{row['test'].lower()} req/s": float(row["rps"]) for row in rows}
    return {**figures, "commands per CPU second": 2 * ops / cpu if cpu else 0.0}


# -- the run --------------------------------------------------------------------------------


def plan(
    env: dict[str, str], ids: list[int], all_ids: list[int], token: str
) -> list[tuple[dict[str, str], list[Kind]]]:
    """Each server's environment and the kinds loaded on it, in order (writes last: they
    invalidate): the cache on, Celery on a broker nobody consumes (``memory://``: the refresh
    a write queues runs on workers, not here); the cache off; no broker (eager refresh)."""
    detail = [f"/api/products/{pk}/" for pk in ids]
    auth = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
    written = detail[: max(1, len(detail) // 10)]
    on = {**env, "CELERY_BROKER_URL": "memory://"}
    return [
        (
            on,
            [
                Kind("detail, cached", detail, warm=True),
                Kind("list, cached", [LIST_PATH]),
                Kind("detail, miss", [f"/api/products/{pk}/" for pk in all_ids], cold=True),
                Kind("edge hit", detail, edge=True),
                Kind("write", written, "PATCH", WRITE_BODY, auth),
            ],
        ),
        (
            {**on, "REPRESENTATION_CACHE": "off"},
            [Kind("detail, uncached", detail), Kind("list, uncached", [LIST_PATH])],
        ),
        (
            env,
            [Kind("write, no broker", written, "PATCH", WRITE_BODY, auth)],
        ),
    ]


def measure_all(
    runner: Runner,
    env: dict[str, str],
    ids: tuple[list[int], list[int]],
    token: str,
    app_core: set[int] | None,
) -> list[Figure]:
    """Every kind of every server of ``plan``; the edge through varnishd, if installed."""
    app = ("example.wsgi", "--worker-class", "gthread", "--threads", str(runner.args.threads))
    figures: list[Figure] = []
    for n, (server_env, server_kinds) in enumerate(plan(env, *ids, token)):
        runner.redis.client.flushall()  # no cache entry or refresh mark of the server before
        with serve(server_env, 1, runner.work / f"gunicorn-{n}.log", app) as url:
            pid = child_serving(urlsplit(url).port or 0)
            if app_core:
                pin(pid, app_core)
            for kind in server_kinds:
                if kind.warm:  # each path once: the cache is warm
                    for path in kind.paths:
                        sample(url + path, kind)
                if not kind.edge:
                    figures.append(runner.measure(url, pid, kind))
                elif not Path(VARNISHD).exists():
                    print(f"capacity: no {VARNISHD}, no edge row", file=sys.stderr)
                else:
                    with varnish(url, runner.work) as (edge_url, proc):
                        if app_core:
                            pin(proc.pid, app_core)
                        figures.append(runner.measure(edge_url, proc.pid, kind))
    return figures


def _n(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


HEADER = ("kind", "request", "req/s on 1 core", "core busy", "CPU ms/request",
          "req/s per core (by CPU)", "PostgreSQL CPU ms/request", "queries/request",
          "db ms/request", "Redis commands/request", "Redis CPU ms/request", "hits", "p50 ms",
          "p99 ms", "errors")  # fmt: skip


def table(figures: list[Figure]) -> str:
    """The figures as a Markdown table."""
    lines = table_lines(HEADER, 2)
    for f in figures:
        cells = [
            f.kind,
            f"`{f.path}`",
            _n(f.load.rps, 0),
            f"{f.busy:.0%}",
            _n(f.per_request(f.server_cpu_s), 3),
            _n(f.rps_per_core, 0),
            _n(f.per_request(f.pg_cpu_s), 3),
            _n(f.queries, 0),
            _n(f.db_ms),
            _n(f.per_request(sum(f.redis_commands.values()), 1)),
            _n(f.per_request(f.redis_cpu_s), 3),
            "-" if f.hit_ratio is None else f"{f.hit_ratio:.1%}",
            _n(f.load.latency_ms["p50"], 1),
            _n(f.load.latency_ms["p99"], 1),
            f"{f.load.error_count:,}",
        ]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def block(facts: Mapping[str, object], figures: list[Figure], redis_rates: dict[str, float]) -> str:
    """The Markdown between the markers: facts, command, the figures and Redis's own."""
    f = facts
    peaks = [g.connections for g in figures if g.connections is not None]
    most = "not measured (SQLite)"
    if peaks:
        most = f"at most **{max(peaks)}** client backends during the runs"
    commands = "; ".join(
        f"{g.kind}: "
        + (", ".join(f"{n} {c / g.load.ok:.2f}" for n, c in g.redis_commands.items()) or "none")
        for g in figures
        if g.load.ok
    )
    rates = ", ".join(f"{name} **{value:,.0f}**" for name, value in redis_rates.items())
    return f"""### Capacity: per-core figures (one pinned process)

Measured {f["timestamp"]} at commit `{f["commit"]}` with `{f["command"]}`; the model that \
uses them: [docs/capacity.md](docs/capacity.md).

- Machine: {f["cores"]} cores ({f["cpu"]}), {f["memory_gib"]:.1f} GiB memory, shared with other \
work; load average {f["load_average"]:.2f} before the run, {f["load_after"]:.2f} after
- Server: gunicorn, 1 worker (gthread, {f["threads"]} threads) pinned to core {f["app_core"]}; \
wrk ({f["connections"]} connections, {f["duration_s"]} s per kind after {f["warmup_s"]} s of \
warm-up) and this harness on core(s) {f["load_cores"]}; the database (`{f["database"]}`, \
{f["products"]:,} products, persistent connections) and a private redis-server float
- CPU ms/request: user + system CPU of the pinned process tree (gunicorn; varnishd for the \
edge hit) over the run / 2xx responses, so req/s per core (by CPU) = 1000 / it; req/s on 1 core \
is what wrk got, lower when the core was not all ours (core busy < 100%) or the process waited \
on the database. PostgreSQL CPU: the client backends of the database; Redis: commands \
(`INFO commandstats` after `CONFIG RESETSTAT`) and CPU of the private redis-server; queries and \
db ms: median Server-Timing of {SAMPLES} requests outside the load
- Database connections per app process: {most} ({f["threads"]} threads, one persistent \
connection each)
- Redis commands per request: {commands}
- redis-benchmark on the private redis-server pinned to one core ({f["redis_ops"]:,} requests \
per test, 50 clients, no pipelining): {rates}

{table(figures)}"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument("--products", type=int, help="dataset size (default 10000; smoke 300)")
    parser.add_argument("--duration", type=int, help="seconds per kind (default 8; smoke 1)")
    parser.add_argument("--warmup", type=int, help="warm-up seconds per kind (default 2)")
    parser.add_argument("--connections", type=int, help="wrk connections (default 16)")
    parser.add_argument("--ops", type=int, help="redis-benchmark requests per test")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads (default 4)")
    parser.add_argument(
        "--database-url", help=f"default {DEFAULT_DATABASE_URL}; smoke: a temporary SQLite file"
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--smoke", action="store_true", help="tiny, SQLite, nothing written")
    args = parser.parse_args(argv)
    for name, value in (SMOKE if args.smoke else REAL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def run(args: argparse.Namespace, command: str, work: Path) -> int:
    """Measure, report, and return the exit status."""
    wrk = ensure_wrk()
    load_average = os.getloadavg()[0]
    timestamp = datetime.now(UTC)
    database_url = args.database_url or (
        f"sqlite:///{work}/capacity.sqlite3" if args.smoke else DEFAULT_DATABASE_URL
    )
    env = service_env(database_url)
    for name in ("REDIS_URL", "CACHE_URL", "CELERY_BROKER_URL", "EDGE_PURGE_URLS"):  # not shared
        env.pop(name, None)
    ensure_postgres_database(database_url)
    dataset = prepare_dataset(env, args.products)
    token = manage(env, "shell", "-v", "0", "-c", _TOKEN).split()[-1]
    all_ids = json.loads(manage(env, "shell", "-v", "0", "-c", ALL_IDS).strip().splitlines()[-1])
    setup_django(database_url)  # tests.test_cache_outage (RedisServer) imports the shop

    cores = sorted(os.sched_getaffinity(0))
    app_core = {cores[-1]} if len(cores) > 1 else None
    load_cores = set(cores[:-1]) if app_core else set(cores)
    os.sched_setaffinity(0, load_cores)  # wrk and what we start inherit it
    private = PrivateRedis(work)
    private.server.start()
    try:
        pin(private.pid, set(cores))  # Redis floats, like PostgreSQL
        database = Database(database_url) if database_url.startswith("postgres") else None
        runner = Runner(wrk, work, args, private, database)
        server_env = {**env, "REDIS_URL": private.url, "DB_MODE": "direct"}
        figures = measure_all(runner, server_env, (dataset.ids, all_ids), token, app_core)
        redis_rates = redis_benchmark(private, args.ops, app_core)
    finally:
        private.server.terminate()

    facts = {
        "timestamp": timestamp.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "commit": git_commit(ROOT),
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_gib": memory_gib(),
        "load_average": load_average,
        "load_after": os.getloadavg()[0],
        "database": dataset.database,
        "products": dataset.products,
        "threads": args.threads,
        "app_core": ",".join(map(str, sorted(app_core or []))) or "(not pinned: one core)",
        "load_cores": ",".join(map(str, sorted(load_cores))),
        "connections": args.connections,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "redis_ops": args.ops,
    }
    content = block(facts, figures, redis_rates)
    print(content)
    if args.json:
        rows = [{**asdict(f), "rps_per_core": f.rps_per_core, "busy": f.busy} for f in figures]
        document = {"facts": facts, "redis_benchmark": redis_rates, "figures": rows}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    if not (args.smoke or args.no_write):
        text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
        BENCHMARKS.write_text(replace_block(text, content, START, END))
    failed = [f.kind for f in figures if f.load.error_count or not f.load.ok]
    if failed:
        print(f"bench.capacity: failed requests in {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    return entry("bench.capacity", run, parse_args, argv, errors=(redis.RedisError, OSError))


if __name__ == "__main__":
    sys.exit(main())
