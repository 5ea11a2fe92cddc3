"""Reads on streaming replicas, writes and transactions on the primary, and read-your-writes
by WAL position, not by timer.

    DATABASES = {
        "default": database_config(PRIMARY_URL),
        "replica_1": replica_config(REPLICA_URL),  # drf_scale.db, a replica of "default"
    }
    DATABASE_ROUTERS = ["drf_scale.routers.ReplicaRouter"]
    MIDDLEWARE = [..., "drf_scale.middleware.DatabaseUnavailableMiddleware",
                  "drf_scale.routers.ReadPositionMiddleware", ...]

The guarantee, per request that ``ReadPositionMiddleware`` sees:

- A request of an unsafe method (POST, PUT, PATCH, DELETE) reads and writes the primary.
  Its response (below 400) carries the primary's WAL position after its commit: the
  ``X-Read-After`` header and the ``drf_scale_read_after`` cookie.
- A safe request (GET, HEAD, OPTIONS) reads one database for all its queries: a replica that
  answers, lags at most ``REPLICA_MAX_LAG`` seconds and, when the request carries a position
  (the cookie or the header, the later of the two), has replayed past it; else the primary.
  So a client that sends back the position of its last write reads that write or a later
  state; a client that sends none may read a state up to ``REPLICA_MAX_LAG`` old.
- Every query inside ``atomic()`` reads the primary, in any request.
- A replica that fails a read is skipped for ``REPLICA_RETRY_AFTER`` seconds and the view
  runs again on the primary (sync and async views): the client sees no error of the replica.
- Queries outside a request (commands, tasks, the cache's invalidation) read the primary.

Replica positions are sampled on a connection of their own (not counted in a request's
queries), at most once per ``REPLICA_SAMPLE_MS`` per replica and process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse

from drf_scale.conf import scale_settings
from drf_scale.db import REPLICA_OF, replicas_of
from drf_scale.middleware import SyncAndAsyncMiddleware

__all__ = [
    "READ_POSITION_COOKIE",
    "READ_POSITION_HEADER",
    "ReadPositionMiddleware",
    "ReplicaRouter",
    "format_lsn",
    "parse_lsn",
]

logger = logging.getLogger("drf_scale.routers")

READ_POSITION_HEADER = "X-Read-After"
READ_POSITION_COOKIE = "drf_scale_read_after"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def parse_lsn(text: str) -> int:
    """A WAL position as PostgreSQL prints it (``16/B374D848``), as a number."""
    high, _, low = text.strip().partition("/")
    if not low or len(high) > 8 or len(low) > 8:
        raise ValueError(f"not a WAL position: {text!r}")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(position: int) -> str:
    """A WAL position (a number) as PostgreSQL prints it."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


# Replica positions, sampled per process.


@dataclass(frozen=True)
class Sample:
    """What a replica said: the WAL position it replayed and its lag (None: it failed)."""

    replayed: int | None
    lag: float
    at: float  # time.monotonic()

    def fresh(self, now: float) -> bool:
        if self.replayed is None:
            return now - self.at < scale_settings.REPLICA_RETRY_AFTER
        return (now - self.at) * 1000 < scale_settings.REPLICA_SAMPLE_MS

    def serves(self, after: int | None) -> bool:
        """Whether reads may go to this replica: it answers, lags little, replayed ``after``."""
        if self.replayed is None or self.lag > scale_settings.REPLICA_MAX_LAG:
            return False
        return after is None or self.replayed >= after


# Lag: 0 when the replica replayed all it received (an idle primary sends nothing), else
# the age of the last transaction it replayed. Two statements in one round trip are one
# transaction, which the SET LOCAL bounds: a startup parameter would be refused by
# PgBouncer, and a session's SET would stay on a server connection other clients share.
_SAMPLE_SQL = """
SET LOCAL statement_timeout = 1000;
SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
  CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
       ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END
"""


class Monitor:
    """The replicas' positions, each sampled on a connection of its own at most once per
    ``REPLICA_SAMPLE_MS``; a failed one is skipped for ``REPLICA_RETRY_AFTER`` seconds."""

    def __init__(self) -> None:
        self._samples: dict[str, Sample] = {}
        self._connections: dict[str, Any] = {}  # psycopg connections
        self._lock = threading.Lock()

    def sample(self, alias: str, *, fresh: bool = False) -> Sample:
        """The replica's last sample, or a new one when it is too old (``fresh``: one taken
        after this call began, unless the replica is being skipped). Threads asking at once
        share one sample."""
        asked = time.monotonic()
        if (usable := self._usable(alias, asked, fresh)) is not None:
            return usable
        with self._lock:
            if (usable := self._usable(alias, asked, fresh)) is not None:
                return usable  # taken while this thread waited
            taken = self._samples[alias] = self._take(alias)
        return taken

    def _usable(self, alias: str, asked: float, fresh: bool) -> Sample | None:
        known = self._samples.get(alias)
        if known is None:
            return None
        if known.replayed is None:  # skipped for REPLICA_RETRY_AFTER, fresh or not
            return known if known.fresh(time.monotonic()) else None
        if fresh:
            return known if known.at >= asked else None
        return known if known.fresh(time.monotonic()) else None

    def failed(self, alias: str) -> None:
        """A read on ``alias`` failed: skip it until it answers a sample again."""
        with self._lock:
            self._samples[alias] = Sample(None, 0.0, time.monotonic())
            self._close(alias)

    def forget(self) -> None:
        with self._lock:
            for alias in list(self._connections):
                self._close(alias)
            self._samples.clear()

    def _take(self, alias: str) -> Sample:
        try:
            import psycopg  # replicas are PostgreSQL's (check drf_scale.E029 without it)
        except ImportError:
            return Sample(None, 0.0, time.monotonic())
        try:
            conn = self._connections.get(alias)
            if conn is None or conn.closed:
                conn = self._connections[alias] = _connect(alias)
            cursor = conn.execute(_SAMPLE_SQL)
            cursor.nextset()  # past the SET
            row = cursor.fetchone()
        except psycopg.Error as exc:
            logger.warning("replica %s is skipped: %s", alias, exc)
            self._close(alias)
            return Sample(None, 0.0, time.monotonic())
        assert row is not None
        in_recovery, replayed, lag = row
        if not in_recovery or replayed is None:  # promoted, or not a replica at all
            logger.warning("replica %s is skipped: it is not replaying a primary's WAL", alias)
            return Sample(None, 0.0, time.monotonic())
        return Sample(parse_lsn(replayed), float(lag), time.monotonic())

    def _close(self, alias: str) -> None:
        conn = self._connections.pop(alias, None)
        if conn is not None:
            conn.close()


# libpq's connection parameters an alias's OPTIONS may hold (TLS, services), kept for samples.
_LIBPQ_OPTIONS = (
    "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword", "service",
    "passfile", "application_name", "target_session_attrs",
)  # fmt: skip


def _connect(alias: str) -> Any:
    """A connection for samples: bounded to connect, to answer (each sample's own timeout),
    and on a silent peer."""
    import psycopg

    db = settings.DATABASES[alias]
    options = db.get("OPTIONS", {})
    kept = {key: value for key, value in options.items() if key in _LIBPQ_OPTIONS}
    return psycopg.connect(
        dbname=db.get("NAME") or "postgres",
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
        connect_timeout=options.get("connect_timeout", 2),
        keepalives=1,
        keepalives_idle=1,
        keepalives_interval=1,
        keepalives_count=2,
        tcp_user_timeout=2000,
        autocommit=True,
        **kept,
    )


monitor = Monitor()


# The reads of one request.


@dataclass
class Reads:
    """Where the queries of one request read: chosen once, at its first read."""

    safe: bool
    after: int | None  # the client's read position
    primary: str = DEFAULT_DB_ALIAS
    chosen: str | None = None
    retried: bool = field(default=False)

    def alias(self) -> str:
        if not self.safe or connections[self.primary].in_atomic_block:
            return self.primary
        if self.chosen is None:
            self.chosen = self._choose()
        return self.chosen

    def _choose(self) -> str:
        replicas = replicas_of(self.primary)
        for fresh in (False, True):  # a sample too old for the position: sample once more
            for alias in replicas:
                if monitor.sample(alias, fresh=fresh).serves(self.after):
                    return alias
            if self.after is None:
                break
        return self.primary

    def on_replica(self) -> bool:
        return self.chosen not in (None, self.primary)


_reads: ContextVar[Reads | None] = ContextVar("drf_scale_reads", default=None)


def reads_current() -> bool:
    """Whether what this request reads from now on reflects every write the primary has
    committed so far: it reads the primary, or a replica that has replayed the primary's
    current WAL position (sampled now, one query each). A cache fill whose lease was taken
    before this is stored only then: an invalidation before the lease is older than that
    position, one after it revokes the lease."""
    reads = _reads.get()
    if reads is None:
        return True
    alias = reads.alias()
    if alias == reads.primary:
        return True
    try:
        with connections[reads.primary].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            primary = parse_lsn(cursor.fetchone()[0])
    except (DatabaseError, InterfaceError):
        return False
    replayed = monitor.sample(alias, fresh=True).replayed
    return replayed is not None and replayed >= primary


class ReplicaRouter:
    """Django's router for a primary and its replicas (``replica_config``): a request's reads
    go where its ``Reads`` says, writes and everything outside a request to the primary."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        reads = _reads.get()
        instance = hints.get("instance")
        db = getattr(getattr(instance, "_state", None), "db", None)
        if reads is None or (db is not None and _primary_of(db) != reads.primary):
            return None  # outside a request, or an object of another database: its own
        return reads.alias()

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        instance = hints.get("instance")
        db = getattr(getattr(instance, "_state", None), "db", None)
        if db is not None:  # an instance read from a replica is saved on its primary
            return settings.DATABASES.get(db, {}).get(REPLICA_OF) or db
        return None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        groups = {_primary_of(obj._state.db) for obj in (obj1, obj2)}
        return True if len(groups) == 1 else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if settings.DATABASES.get(db, {}).get(REPLICA_OF) else None


def _primary_of(alias: str | None) -> str | None:
    if alias is None:
        return None
    return settings.DATABASES.get(alias, {}).get(REPLICA_OF) or alias


# The middleware: a request's reads, the position after a write, a replica's fault retried.


class BadReadPosition(ValueError):
    pass


def read_position(request: HttpRequest) -> int | None:
    """The position a request asks to read after: the later of its header and cookie. A
    malformed header is the client's error; a malformed cookie is ignored."""
    positions = []
    header = request.headers.get(READ_POSITION_HEADER)
    if header:
        try:
            positions.append(parse_lsn(header))
        except ValueError as exc:
            raise BadReadPosition(str(exc)) from exc
    cookie = request.COOKIES.get(READ_POSITION_COOKIE)
    if cookie:
        with contextlib.suppress(ValueError):  # a cookie's garbage is not the client's error
            positions.append(parse_lsn(cookie))
    return max(positions, default=None)


class ReadPositionMiddleware(SyncAndAsyncMiddleware):
    """Per request: its ``Reads`` (safe methods on a replica, after the client's position),
    the primary's WAL position on the response of a write, and a view run again on the
    primary when a replica fails its read. Put it after ``DatabaseUnavailableMiddleware``."""

    def call(self, request: HttpRequest) -> HttpResponse:
        reads = self.start(request)
        if isinstance(reads, HttpResponse):
            return reads
        token = _reads.set(reads)
        try:
            response = self.get_response(request)
        finally:
            _reads.reset(token)
        return self.finish(reads, response, self.written_position(reads, response))

    async def acall(self, request: HttpRequest) -> HttpResponse:
        reads = self.start(request)
        if isinstance(reads, HttpResponse):
            return reads
        token = _reads.set(reads)
        try:
            response = await self.get_response(request)
        finally:
            _reads.reset(token)
        position = await sync_to_async(self.written_position)(reads, response)
        return self.finish(reads, response, position)

    def start(self, request: HttpRequest) -> Reads | HttpResponse:
        try:
            after = read_position(request)
        except BadReadPosition as exc:
            detail = f"{READ_POSITION_HEADER} must be a WAL position such as 0/16B3748: {exc}"
            return JsonResponse({"detail": detail}, status=400)
        reads = Reads(safe=request.method in SAFE_METHODS, after=after)
        request._drf_scale_reads = reads  # type: ignore[attr-defined]
        return reads

    def written_position(self, reads: Reads, response: HttpResponse) -> int | None:
        """The primary's WAL position after a write that succeeded (None: a read, a failed
        write, or a primary that cannot say)."""
        if reads.safe or response.status_code >= 400 or not replicas_of(reads.primary):
            return None
        try:
            with connections[reads.primary].cursor() as cursor:
                cursor.execute("SELECT pg_current_wal_lsn()::text")
                return parse_lsn(cursor.fetchone()[0])
        except (DatabaseError, InterfaceError) as exc:  # a committed write still answers
            logger.warning("no read position for this write: %s", exc)
            return None

    def finish(self, reads: Reads, response: HttpResponse, position: int | None) -> HttpResponse:
        if position is not None:
            text = format_lsn(position)
            response[READ_POSITION_HEADER] = text
            response.set_cookie(
                READ_POSITION_COOKIE,
                text,
                max_age=scale_settings.READ_POSITION_MAX_AGE,
                httponly=True,
                samesite="Lax",
            )
        return response

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        request._drf_scale_view = (view, args, kwargs)  # type: ignore[attr-defined]

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        """A replica's failed read: skip the replica, run the view again on the primary."""
        reads = getattr(request, "_drf_scale_reads", None)
        view = getattr(request, "_drf_scale_view", None)
        if not isinstance(exception, OperationalError | InterfaceError):
            return None  # the data's or the query's error, not the replica's connection
        if reads is None or view is None:
            return None
        if not reads.on_replica() or reads.retried:
            return None
        failed = reads.chosen
        logger.warning(
            "%s %s: replica %s failed a read, run again on the primary: %s",
            request.method, request.path, failed, exception,
        )  # fmt: skip
        monitor.failed(failed)
        connections[failed].close()
        reads.chosen, reads.retried = reads.primary, True
        function, args, kwargs = view
        if iscoroutinefunction(function):  # Django calls this from a thread of its own
            function = async_to_sync(function)
        try:
            response = function(request, *args, **kwargs)
            if getattr(response, "is_rendered", True) is False:
                response.render()  # a failure while rendering: Django will not render again
            return response
        except (DatabaseError, InterfaceError):  # the primary too: the original error's answer
            return None
