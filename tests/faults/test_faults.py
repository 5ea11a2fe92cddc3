"""Faults over real HTTP: the reference service under load while its services break.

The service runs under gunicorn (2 sync workers, ``example.wsgi``) on a private PostgreSQL
behind a private PgBouncer (transaction mode, ``DB_MODE=pgbouncer``) and a private Redis (the
representation cache and Django's cache), tasks in-process. Nothing on the standard ports is
touched (tests/faults/cluster.py). Each test loads it from a few threads, before, during and
after one fault:

- reads: ``/api/products/<pk>/`` and the first page of ``/api/products/``;
- writes: staff PATCHes (token) renaming products ``<tag><n>``, n growing per product; a
  write answered 200 is *committed* for the readers from then on;
- a *stale read* is a 200 read showing a product (or the renamed brand) older than what was
  committed before the read started; *recovery* is the time from the service's restoration
  (Redis, PgBouncer or PostgreSQL answering again) to the end of the first request started
  after it that succeeded the way the fault prevented: a cache hit for Redis faults, a read or
  write that needs the database for database faults.

Asserted: no request without an HTTP answer (a hang or a reset); through Redis faults no
5xx, and reads answered while the fault lasted (a dead or hung Redis must not hold requests);
through database faults only 503 with Retry-After (never 500); no stale read after recovery;
recovery observed. The figures (requests, 5xx, 503, stale reads, recovery time, slowest request)
are printed at the end of the module and written to tests/faults/results.md; no wall-clock
threshold is asserted on them.

The faults: Redis killed and restarted; Redis frozen 3 s while another process writes;
PgBouncer restarted; PostgreSQL stopped and started, through PgBouncer and directly (kept
connections). Not covered: a Celery worker stopped (the service runs its tasks in-process).
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import re
import shutil
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.faults.cluster import (
    BrandWriter,
    PgBouncer,
    PostgresCluster,
    Service,
    private_dir,
    require_binaries,
    serve_shop,
)
from tests.processes import wait_until

# The PostgreSQL pass of the main environment only (not the PgBouncer pass, not the matrix).
pytestmark = [pytest.mark.postgres, pytest.mark.once]

DATABASE = "shop"
PRODUCTS = 200
PAGE = 20  # the list read: the first page, whose products the writers rename
WRITTEN = 10  # products renamed by the writers, all on that page
READERS, WRITERS = 3, 2
PHASE_REQUESTS = 80  # at least this many requests before the fault, and after recovery
DURING_REQUESTS = 40  # ... and during the fault, unless it lasts MAX_HOLD
MAX_HOLD = 8.0  # seconds a fault is held at most, answered or not
REQUEST_TIMEOUT = 15.0  # a request without an answer by then has hung (gunicorn's is 30)
RECOVERY_TIMEOUT = 30.0
RESULTS_FILE = Path(__file__).with_name("results.md")
RESULTS: list[dict[str, Any]] = []


@pytest.fixture(autouse=True)
def empty_representation_cache() -> None:
    """Overrides conftest's: these tests never use the test process's store (the shared
    Redis); each service has a Redis of its own."""


@pytest.fixture(scope="module")
def binaries() -> None:
    require_binaries("the fault tests")


@pytest.fixture(scope="module", autouse=True)
def results_table(request) -> Iterator[None]:
    """At the end of the module: the figures of every fault, on stdout and in results.md."""
    yield
    if not RESULTS:
        return
    table = render(RESULTS)
    RESULTS_FILE.write_text(table)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", f"Fault tests ({RESULTS_FILE.name}):", *table.splitlines()]
    for line in lines:
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line)


@dataclass
class Database:
    """The private PostgreSQL, migrated and seeded, and the private PgBouncer before it."""

    postgres: PostgresCluster
    pgbouncer: PgBouncer
    token: str  # the seed's staff user "admin"

    def ensure_up(self) -> None:
        """What a test that failed halfway left broken is repaired for the next one."""
        if not self.postgres.running():
            self.postgres.start()
        self.pgbouncer.resume()
        if self.pgbouncer.process is None:
            self.pgbouncer.start()


@pytest.fixture(scope="module")
def database(binaries) -> Iterator[Database]:
    directory = private_dir("pg")
    postgres = PostgresCluster(directory)
    pgbouncer = PgBouncer(directory, postgres.port)
    try:
        token = "f" * 40
        serve_shop(postgres, DATABASE, PRODUCTS, token)
        pgbouncer.start()
        yield Database(postgres, pgbouncer, token)
    finally:
        pgbouncer.terminate()
        postgres.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def service(request, database, private_redis, tmp_path) -> Iterator[Service]:
    """The service through the private PgBouncer (or straight to the private PostgreSQL with
    the param ``"direct"``), its cache on the private Redis."""
    mode = getattr(request, "param", "pgbouncer")
    database.ensure_up()
    server = database.pgbouncer if mode == "pgbouncer" else database.postgres
    url = server.url(DATABASE)
    with Service(tmp_path, url, DB_MODE=mode, REDIS_URL=private_redis.url) as running:
        yield running


# HTTP and the load.


def request(
    url: str, method: str = "GET", body: Any = None, token: str | None = None
) -> tuple[int | None, dict[str, str], bytes, str]:
    """(status, headers, body, error); status None when no HTTP answer came."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Token {token}"
    prepared = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(prepared, timeout=REQUEST_TIMEOUT) as response:
            return response.status, dict(response.headers), response.read(), ""
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read(), ""
    except (OSError, http.client.HTTPException) as error:
        return None, {}, b"", repr(error)


@dataclass
class Call:
    kind: str  # "detail", "list" or "write"
    path: str
    start: float
    end: float
    status: int | None
    headers: dict[str, str]
    stale: str = ""  # what a read showed older than committed
    error: str = ""  # no HTTP answer, or a write answered with other data

    @property
    def is_read(self) -> bool:
        return self.kind != "write"


def version(name: str, prefix: str) -> int:
    """n of a name ``<prefix><n>``; 0 for anything else (the seed's name, another test's)."""
    match = re.fullmatch(re.escape(prefix) + r"(\d+)", name)
    return int(match[1]) if match else 0


class Load:
    """READERS threads reading and WRITERS threads renaming products until stopped; every
    request is a :class:`Call` in ``calls``."""

    def __init__(
        self,
        base: str,
        token: str,
        page: list[int],
        tag: str,
        brand_writer: BrandWriter | None = None,
    ) -> None:
        self.base, self.token, self.page, self.tag = base, token, page, tag
        self.written = page[:WRITTEN]
        self.brand_writer = brand_writer
        self.committed = dict.fromkeys(self.written, 0)
        self.calls: list[Call] = []
        self.crashes: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._numbers = itertools.count(1)
        self._threads = [
            threading.Thread(target=self._loop, args=(self._read, random.Random(i)))
            for i in range(READERS)
        ]
        self._threads += [
            threading.Thread(target=self._loop, args=(self._write, self.written[i::WRITERS]))
            for i in range(WRITERS)
        ]

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)

    def _loop(self, work: Callable[[Any], None], arg: Any) -> None:
        try:
            while not self._stop.is_set():
                work(arg)
        except Exception:
            self.crashes.append(traceback.format_exc())

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _read(self, rng: random.Random) -> None:
        if rng.random() < 0.5:
            kind, path = "detail", f"/api/products/{rng.choice(self.page)}/"
        else:
            kind, path = "list", f"/api/products/?page_size={PAGE}"
        with self._lock:
            required = dict(self.committed)
        brand_required = self.brand_writer.latest() if self.brand_writer else 0
        start = time.monotonic()
        status, headers, body, error = request(self.base + path)
        call = Call(kind, path, start, time.monotonic(), status, headers, error=error)
        if status == 200:
            data = json.loads(body)
            rows = [data] if kind == "detail" else data["results"]
            call.stale = self._staleness(rows, required, brand_required)
        self._record(call)

    def _staleness(self, rows: list[dict], required: dict[int, int], brand_required: int) -> str:
        found = []
        for row in rows:
            pk, name = row["id"], row["name"]
            if pk in required and version(name, self.tag) < required[pk]:
                found.append(f"product {pk} {name!r}, committed {self.tag}{required[pk]}")
            writer = self.brand_writer
            if writer is not None and row["brand"]["id"] == writer.pk:
                brand = row["brand"]["name"]
                if version(brand, writer.prefix) < brand_required:
                    found.append(
                        f"brand of {pk} {brand!r}, committed {writer.prefix}{brand_required}"
                    )
        return "; ".join(found)

    def _write(self, products: list[int]) -> None:
        for pk in products:
            number = next(self._numbers)
            name, path = f"{self.tag}{number}", f"/api/products/{pk}/"
            start = time.monotonic()
            status, headers, body, error = request(
                self.base + path, "PATCH", {"name": name}, self.token
            )
            call = Call("write", path, start, time.monotonic(), status, headers, error=error)
            if status == 200:
                answered = json.loads(body)["name"]
                if answered != name:
                    call.error = f"answered {answered!r} for {name!r}"
                with self._lock:
                    self.committed[pk] = max(self.committed[pk], number)
            self._record(call)
            if self._stop.is_set():
                return

    # What the test waits on.

    def since(self, moment: float) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.start >= moment]

    def wait_requests(self, count: int, moment: float, what: str, log: Callable[[], str]) -> None:
        wait_until(lambda: len(self.since(moment)) >= count, what, RECOVERY_TIMEOUT, log)

    def hold(self, moment: float, at_least: float) -> None:
        """Keep the fault ``at_least`` seconds and until DURING_REQUESTS requests were
        answered during it, but no longer than MAX_HOLD (requests may be stuck)."""
        while time.monotonic() - moment < MAX_HOLD:
            answered = [call for call in self.since(moment) if call.end > moment]
            if time.monotonic() - moment >= at_least and len(answered) >= DURING_REQUESTS:
                return
            time.sleep(0.05)

    def first_success(self, moment: float, success: Callable[[Call], bool]) -> Call | None:
        done = [call for call in self.since(moment) if success(call)]
        return min(done, key=lambda call: call.end) if done else None


def cache_hit(call: Call) -> bool:
    """Served from the representation cache: a detail hit, or a list with a hit."""
    cache = call.headers.get("X-Cache", "")
    return call.status == 200 and (cache == "hit" or bool(re.fullmatch(r"[1-9]\d*/\d+ hit", cache)))


def database_success(call: Call) -> bool:
    """Succeeded where the database is needed: a write, or a list (its keys are queried)."""
    return call.status == 200 and call.kind in ("write", "list")


def first_page(service: Service) -> list[dict]:
    status, _, body, error = request(f"{service.url}/api/products/?page_size={PAGE}")
    assert status == 200, (status, error, body[:300], service.logs())
    return json.loads(body)["results"]


def warm(service: Service) -> None:
    """Requests on both workers before the load: a worker's first request imports the URLconf
    and connects, and would be the slowest request of the run."""
    url = f"{service.url}/api/products/?page_size={PAGE}"
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: request(url)[0], range(8)))
    assert statuses == [200] * 8, (statuses, service.logs())


def busiest_brand(rows: list[dict]) -> int:
    return Counter(row["brand"]["id"] for row in rows).most_common(1)[0][0]


@dataclass
class Report:
    fault: str
    calls: list[Call]
    fault_at: float
    restored_at: float
    recovered_at: float
    recovery: float
    figures: dict[str, Any] = field(default_factory=dict)

    def during(self) -> list[Call]:
        return [c for c in self.calls if self.fault_at <= c.start < self.restored_at]

    def after_recovery(self) -> list[Call]:
        return [c for c in self.calls if c.start >= self.recovered_at]

    def show(self, calls: list[Call], limit: int = 12) -> str:
        """The calls as evidence: time from the fault, kind, status, X-Cache, what was wrong."""
        lines = [
            f"  {c.start - self.fault_at:+7.3f}s {c.end - c.start:6.3f}s {c.kind:6} {c.path:28}"
            f" {c.status} {c.headers.get('X-Cache', '-')} {c.stale} {c.error}"
            for c in calls[:limit]
        ]
        more = len(calls) - limit
        return "\n".join(lines + ([f"  ... and {more} more"] if more > 0 else []))


def run_fault(
    service: Service,
    token: str,
    fault: str,
    tag: str,
    inject: Callable[[], None],
    restore: Callable[[], None],
    recovered: Callable[[Call], bool],
    at_least: float,
    brand_writer: BrandWriter | None = None,
    page: list[int] | None = None,
) -> Report:
    """Load the service, break it, hold the fault, restore it, wait for recovery, and load it
    some more; the calls and figures, recorded in RESULTS."""
    warm(service)
    page = page or [row["id"] for row in first_page(service)]
    with Load(service.url, token, page, tag, brand_writer) as load:
        load.wait_requests(PHASE_REQUESTS, load.started, "the load to start", service.logs)
        fault_at = time.monotonic()
        inject()
        load.hold(fault_at, at_least)
        restore()
        restored_at = time.monotonic()
        first = wait_until(
            lambda: load.first_success(restored_at, recovered),
            f"recovery after {fault}",
            RECOVERY_TIMEOUT,
            service.logs,
        )
        load.wait_requests(PHASE_REQUESTS, first.end, "requests after recovery", service.logs)
    assert not load.crashes, "\n".join(load.crashes)
    calls = sorted(load.calls, key=lambda call: call.start)
    report = Report(fault, calls, fault_at, restored_at, first.end, first.end - restored_at)
    statuses = [call.status for call in calls]
    report.figures = {
        "fault": fault,
        "requests": len(calls),
        "reads": sum(call.is_read for call in calls),
        "writes": sum(not call.is_read for call in calls),
        "during": len(report.during()),
        "5xx": sum(s is not None and s >= 500 for s in statuses),
        "503": statuses.count(503),
        "no answer": statuses.count(None),
        "stale after recovery": sum(bool(c.stale) for c in report.after_recovery()),
        "stale in all": sum(bool(call.stale) for call in calls),
        "held": restored_at - fault_at,
        "recovery": report.recovery,
    }
    slowest = max(calls, key=lambda call: call.end - call.start)
    report.figures["slowest"] = f"{slowest.end - slowest.start:.3f} s ({slowest.kind})"
    by_duration = sorted(calls, key=lambda call: call.start - call.end)
    report.figures["slowest requests"] = report.show(by_duration, limit=5)
    RESULTS.append(report.figures)
    return report


def render(results: list[dict[str, Any]]) -> str:
    head = (
        "| fault | requests (reads/writes) | during fault | 5xx | 503 | no answer "
        "| stale reads after recovery (all) | fault held | recovery time | slowest request |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['fault']} | {r['requests']} ({r['reads']}/{r['writes']}) | {r['during']} "
            f"| {r['5xx']} | {r['503']} | {r['no answer']} "
            f"| {r['stale after recovery']} ({r['stale in all']}) | {r['held']:.2f} s "
            f"| {r['recovery']:.3f} s | {r['slowest']} |"
        )
    lines += ["", "Slowest requests: start from the fault, duration, kind, path, status, X-Cache."]
    for r in results:
        lines += ["", f"{r['fault']}:", "```", r["slowest requests"], "```"]
    return "\n".join(lines) + "\n"


# Checks shared by the tests.


def check_answered(report: Report, service: Service) -> None:
    unanswered = [c for c in report.calls if c.status is None or c.error]
    assert not unanswered, f"{report.fault}: no HTTP answer\n{report.show(unanswered)}"


def check_fresh_after_recovery(report: Report, service: Service) -> None:
    stale = [c for c in report.after_recovery() if c.stale]
    assert not stale, (
        f"{report.fault}: stale reads after recovery "
        f"({report.recovered_at - report.fault_at:+.3f}s)\n{report.show(stale)}"
    )


def check_no_5xx(report: Report, service: Service) -> None:
    failed = [c for c in report.calls if c.status is not None and c.status >= 500]
    assert not failed, f"{report.fault}: 5xx\n{report.show(failed)}\n{service.logs()}"
    unexpected = [c for c in report.calls if c.status != 200]
    assert not unexpected, f"{report.fault}: not 200\n{report.show(unexpected)}"


def check_reads_went_on(report: Report, service: Service) -> None:
    """Reads were answered while the fault lasted, not all by the cache: Redis away costs a
    request one socket timeout, not the outage."""
    answered = [
        c
        for c in report.calls
        if c.is_read and report.fault_at <= c.start < c.end < report.restored_at
    ]
    slowest = sorted(report.calls, key=lambda c: c.start - c.end)
    assert answered, (
        f"{report.fault}: no read started and answered during the fault "
        f"({report.restored_at - report.fault_at:.2f} s): the service hung. Slowest requests:\n"
        f"{report.show(slowest)}\n{service.logs()}"
    )
    missed = [c for c in answered if not cache_hit(c)]
    assert missed, f"{report.fault}: every read during the fault was a hit: did it happen?"


def check_only_503s(report: Report, service: Service) -> None:
    """Through a database outage: 200 or 503 with Retry-After, never a 500."""
    other = [c for c in report.calls if c.status not in (200, 503)]
    assert not other, f"{report.fault}: not 200 or 503\n{report.show(other)}\n{service.logs()}"
    unavailable = [c for c in report.calls if c.status == 503]
    assert unavailable, f"{report.fault}: no 503 at all: did the fault happen?"
    no_retry_after = [c for c in unavailable if c.headers.get("Retry-After") != "1"]
    assert not no_retry_after, f"{report.fault}: 503 without Retry-After: 1"


# The faults.


def test_redis_killed_then_restarted(service, private_redis, database):
    """SIGKILL: reads and writes go on from the database; the restarted, empty Redis (a new
    run_id) gets a new epoch before it is read."""
    report = run_fault(
        service, database.token, "Redis killed (SIGKILL), restarted", "kill-",
        inject=private_redis.crash, restore=private_redis.start, recovered=cache_hit,
        at_least=1.0,
    )  # fmt: skip
    check_answered(report, service)
    check_no_5xx(report, service)
    check_reads_went_on(report, service)
    check_fresh_after_recovery(report, service)


def test_redis_frozen_while_another_process_writes(service, private_redis, database, tmp_path):
    """SIGSTOP for 3 s while another process of the service renames a brand the cached
    products embed, and the workers rename products: their invalidations are lost in the
    freeze. After SIGCONT the writers renew the epoch; no read after recovery is stale."""
    rows = first_page(service)
    brand = busiest_brand(rows)
    with BrandWriter(service.env, brand, "freeze-brand-", tmp_path) as writer:
        report = run_fault(
            service, database.token, "Redis frozen (SIGSTOP 3 s), another process writing",
            "freeze-", inject=private_redis.hang, restore=private_redis.resume,
            recovered=cache_hit, at_least=3.0, brand_writer=writer,
            page=[row["id"] for row in rows],
        )  # fmt: skip
        renames = writer.latest()
    report.figures["fault"] += f" ({renames} brand renames)"
    lost = "an invalidation was lost"
    assert lost in writer.stderr.read_text(), f"the writer lost nothing:\n{writer.logs()}"
    check_answered(report, service)
    check_no_5xx(report, service)
    check_reads_went_on(report, service)
    check_fresh_after_recovery(report, service)


def test_pgbouncer_restarted(service, database):
    """PgBouncer stops (SIGTERM: every client connection closed) and starts again: requests
    that need the database are 503 meanwhile, cached details may still answer."""
    report = run_fault(
        service, database.token, "PgBouncer stopped, restarted", "bouncer-",
        inject=database.pgbouncer.terminate, restore=database.pgbouncer.start,
        recovered=database_success, at_least=1.5,
    )  # fmt: skip
    check_answered(report, service)
    check_only_503s(report, service)
    check_fresh_after_recovery(report, service)


@pytest.mark.parametrize(
    "service", ["pgbouncer", "direct"], indirect=True, ids=["via-pgbouncer", "direct"]
)
def test_postgres_stopped_then_started(service, database, request):
    """PostgreSQL stops (fast: sessions terminated): 503 with Retry-After, never a 500 nor a
    hang; back once PostgreSQL answers (through PgBouncer: once it logs in again). Direct, the
    workers' kept connections (CONN_MAX_AGE 60) die with it: the health check replaces them."""
    pgbouncer = request.node.callspec.params["service"] == "pgbouncer"
    via = "via PgBouncer" if pgbouncer else "direct, kept connections"
    tag = f"postgres-{'pgbouncer' if pgbouncer else 'direct'}-"
    report = run_fault(
        service, database.token, f"PostgreSQL stopped, started ({via})", tag,
        inject=database.postgres.stop, restore=database.postgres.start,
        recovered=database_success, at_least=2.0,
    )  # fmt: skip
    check_answered(report, service)
    check_only_503s(report, service)
    writes = [c for c in report.during() if not c.is_read]
    assert {c.status for c in writes} <= {200, 503}
    check_fresh_after_recovery(report, service)
