"""DATABASES entries for the three ways to hold PostgreSQL connections at scale.

    DATABASES = {"default": database_config(os.environ["DATABASE_URL"], mode="pool")}

``direct``
    Each thread keeps its connection for ``CONN_MAX_AGE`` (60 s) with health checks.
    Under ASGI (``server="asgi"``) connections are closed after each request instead:
    every request runs in a thread of its own there, so kept connections pile up.
``pool``
    psycopg's pool in each process (Django 5.1+), opened on first use. ``max_size`` is
    the most connections one process holds: size it to the threads that query at
    once (1 per gunicorn sync worker, ``--threads`` for gthread, the concurrent
    requests of an ASGI worker), and keep ``workers x max_size`` below PostgreSQL's
    ``max_connections`` minus its reserved slots (check ``drf_scale.E025``). A request
    that finds the pool exhausted waits ``timeout`` seconds, then fails. Under gunicorn
    use the :func:`post_fork` hook, so no worker inherits the master's pool.
``pgbouncer``
    Through PgBouncer in transaction mode, where consecutive transactions of a client
    may run on different server connections: no server-side cursors
    (``DISABLE_SERVER_SIDE_CURSORS``), no prepared statements (``prepare_threshold``
    None), and ``CONN_MAX_AGE`` 0: PgBouncer does the pooling, a connection to it is
    cheap, and kept client connections would only hold PgBouncer's client slots.

Each entry carries its mode under ``DRF_SCALE_MODE`` for the system checks.
"""

from typing import TYPE_CHECKING, Any, Literal, Protocol, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

__all__ = ["database_config", "post_fork", "replica_config", "replicas_of"]

Mode = Literal["direct", "pool", "pgbouncer"]
Server = Literal["wsgi", "asgi"]
MODES: tuple[Mode, ...] = ("direct", "pool", "pgbouncer")
REPLICA_OF = "DRF_SCALE_REPLICA_OF"  # the DATABASES key naming a replica's primary
SERVERS: tuple[Server, ...] = ("wsgi", "asgi")

DIRECT_MAX_AGE = 60
POOL_DEFAULTS: dict[str, Any] = {"min_size": 2, "max_size": 10, "timeout": 5.0}
# psycopg_pool's own defaults, for OPTIONS {"pool": True} or a pool without max_size.
PSYCOPG_POOL_MIN_SIZE = 4

_ENGINES = {
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
    "sqlite": "django.db.backends.sqlite3",
}


def parse_url(url: str) -> dict[str, Any]:
    """A DATABASES entry from ``postgres://user:password@host:port/name?option=value``
    or ``sqlite:///relative/path``, ``sqlite:////absolute/path``; the query becomes OPTIONS."""
    parts = urlsplit(url)
    if parts.scheme not in _ENGINES:
        raise ImproperlyConfigured(f"Unsupported database URL scheme: {parts.scheme!r}")
    engine = _ENGINES[parts.scheme]
    if engine.endswith("sqlite3"):
        return {"ENGINE": engine, "NAME": unquote(parts.path[1:]) or ":memory:", "OPTIONS": {}}
    return {
        "ENGINE": engine,
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "OPTIONS": dict(parse_qsl(parts.query)),
    }


def database_config(
    url: str,
    mode: Mode = "direct",
    *,
    server: Server = "wsgi",
    pool: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """A DATABASES entry for ``url`` held the ``mode`` way, served by a ``server``.

    ``pool`` overrides the pool sizing (``min_size``, ``max_size``, ``timeout``, any
    psycopg_pool argument); ``options`` are added to the driver's OPTIONS.
    """
    if mode not in MODES:
        raise ImproperlyConfigured(f"Database mode must be one of {MODES}, not {mode!r}")
    if server not in SERVERS:
        raise ImproperlyConfigured(f"Server must be one of {SERVERS}, not {server!r}")
    config = parse_url(url)
    config["OPTIONS"].update(options)
    config["DRF_SCALE_MODE"] = mode
    if mode != "direct" and not config["ENGINE"].endswith("postgresql"):
        raise ImproperlyConfigured(f"Database mode {mode!r} needs PostgreSQL")
    if pool is not None and mode != "pool":
        raise ImproperlyConfigured("Pool sizing applies to mode 'pool' only")
    if mode == "direct":
        config["CONN_MAX_AGE"] = DIRECT_MAX_AGE if server == "wsgi" else 0
        config["CONN_HEALTH_CHECKS"] = True
    elif mode == "pool":
        config["CONN_MAX_AGE"] = 0  # Django refuses persistent connections with a pool.
        config["CONN_HEALTH_CHECKS"] = True  # the pool checks a connection before lending it
        config["OPTIONS"]["pool"] = {**POOL_DEFAULTS, **(pool or {})}
    else:
        config["CONN_MAX_AGE"] = 0
        config["CONN_HEALTH_CHECKS"] = False
        config["DISABLE_SERVER_SIDE_CURSORS"] = True
        config["OPTIONS"]["prepare_threshold"] = None
    return config


def replica_config(
    url: str, mode: Mode = "direct", *, of: str = "default", server: Server = "wsgi"
) -> dict[str, Any]:
    """A DATABASES entry for a streaming replica of the alias ``of``, held as
    ``database_config`` holds it (``connect_timeout`` 2 s unless the URL says), mirrored to
    the primary's database in Django's tests. ``drf_scale.routers`` sends reads to it."""
    config = database_config(url, mode, server=server)
    config["OPTIONS"].setdefault("connect_timeout", 2)
    return {**config, REPLICA_OF: of, "TEST": {"MIRROR": of}}


def replicas_of(primary: str = "default") -> list[str]:
    """The aliases of DATABASES that are replicas of ``primary``."""
    return [alias for alias, db in settings.DATABASES.items() if db.get(REPLICA_OF) == primary]


def is_persistent(config: dict[str, Any]) -> bool:
    """Whether connections of this DATABASES entry outlive a request."""
    max_age = config.get("CONN_MAX_AGE", 0)
    return max_age is None or max_age > 0


def pool_max_size(config: dict[str, Any]) -> int | None:
    """The most connections a process's pool of this entry opens; None without a pool."""
    pool = config.get("OPTIONS", {}).get("pool")
    if not pool:
        return None
    if pool is True:
        return PSYCOPG_POOL_MIN_SIZE
    return pool.get("max_size") or pool.get("min_size", PSYCOPG_POOL_MIN_SIZE)


if TYPE_CHECKING:

    class _PooledConnection(Protocol):
        """A backend that pools (PostgreSQL, Oracle): only theirs take OPTIONS["pool"]."""

        def close_pool(self) -> None: ...


def close_inherited_connections() -> None:
    """Close the connections and pools of this process, e.g. those a fork inherited."""
    connections.close_all()
    for conn in connections.all():
        if pool_max_size(conn.settings_dict):
            cast("_PooledConnection", conn).close_pool()
    if replicas_of():  # the replica samples' own connections, and what they said
        from drf_scale.routers import monitor

        monitor.forget()


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn hook: each worker starts without the master's connections and pools.

    A pool opened in the master (``--preload`` with a query at import time) would
    otherwise hand the same sockets to every worker. In ``gunicorn.conf.py``::

        from drf_scale.db import post_fork  # noqa: F401

    Without ``--preload`` the master never loaded Django: there is nothing to close.
    """
    if apps.ready:
        close_inherited_connections()
