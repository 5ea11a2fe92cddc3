"""The DRF_SCALE settings dict with its defaults, read like DRF's api_settings.

    DRF_SCALE = {"SERVER_TIMING": True}

Read values as attributes of ``scale_settings``; unknown keys are an error so
typos do not pass silently.
"""

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Add the Server-Timing header to every response.
    "SERVER_TIMING": True,
    # Per-request query budget; a view's ``query_budget`` attribute overrides it.
    "QUERY_BUDGET": 5,
    # The same query from the same call site this many times in one request is an N+1.
    "NPLUSONE_THRESHOLD": 3,
    # Per-request budget and N+1 checks: "off", "log" or "raise"; None: "log" if DEBUG else "off".
    "QUERY_CHECKS": None,
    # Count strategy of the drf_scale paginators: dotted path to a CountStrategy class.
    "COUNT_STRATEGY": "drf_scale.counting.HybridCount",
    # HybridCount: an estimate below this many rows is replaced by an exact count.
    "COUNT_HYBRID_THRESHOLD": 10_000,
    # CachedCount: seconds a computed count stays in the cache.
    "COUNT_CACHE_TTL": 60,
    # CachedCount: the alias in Django's CACHES it uses.
    "COUNT_CACHE": "default",
    # EstimatedCount* paginators: the deepest offset served; past it, a 400 pointing to cursors.
    "MAX_OFFSET": 10_000,
    # How the service is served, "wsgi" or "asgi": the connection checks depend on it.
    "SERVER_MODE": "wsgi",
    # Processes that hold connections, for the pool size check; None: $WEB_CONCURRENCY.
    "WORKERS": None,
    # Aggregates: the alias in Django's CACHES that stores their results.
    "AGGREGATE_CACHE": "default",
    # Aggregates: seconds after a write before the refresh runs; writes meanwhile join it.
    "AGGREGATE_DEBOUNCE": 2,
    # Aggregates, no stored result: "compute" (one request computes, others wait) or "accept" (202).
    "AGGREGATE_ON_MISS": "compute",
    # Aggregates: seconds a request waits for another one computing a missing result, then 202.
    "AGGREGATE_MISS_WAIT": 3.0,
    # Aggregates: the Retry-After seconds of a 202 while a result is being computed.
    "AGGREGATE_RETRY_AFTER": 2,
    # Aggregates: seconds a computation holds its lock (a crashed one frees it then).
    "AGGREGATE_COMPUTE_TIMEOUT": 60,
    # Compiled read plans serve FastReadMixin and write responses; False: all through DRF.
    "FAST_READS": True,
    # Representation cache: None keeps it in this process's memory (one process only);
    # a redis:// URL shares it between processes.
    "CACHE_URL": None,
    # False: the Cached*Mixin views read the database every time (still with ETags).
    "CACHE_ENABLED": True,
    # Modules whose import defines every cached view, imported at a process's first database
    # connection (their dependencies must be known before its first write); None: ROOT_URLCONF.
    "CACHE_VIEW_MODULES": None,
    # Seconds a cached representation lives without being read or invalidated.
    "CACHE_TTL": 3600,
    # Prefix of every key, and part of every entry's name: change the version to drop them all.
    "CACHE_KEY_PREFIX": "drf_scale",
    "CACHE_VERSION": "1",
    # Milliseconds a miss holds its lease while it reads the database.
    "CACHE_LEASE_MS": 2000,
    # Seconds a request waits for another one rebuilding the same entry, then reads the database.
    "CACHE_LEASE_WAIT": 0.1,
    # Redis: seconds to connect or answer before the cache is skipped for this request.
    "CACHE_SOCKET_TIMEOUT": 0.1,
    # Redis: consecutive failures that open the circuit breaker, and seconds it stays open.
    "CACHE_BREAKER_FAILURES": 2,
    "CACHE_BREAKER_COOLDOWN": 2.0,
    # Redis: seconds between two attempts to renew the epoch after a lost invalidation.
    "CACHE_RENEW_INTERVAL": 0.05,
    # Cache-Control of public representations, for shared caches (CDNs).
    "CACHE_S_MAXAGE": 60,
    "CACHE_STALE_WHILE_REVALIDATE": 30,
    # DatabaseUnavailableMiddleware: the Retry-After seconds of its 503s.
    "DATABASE_RETRY_AFTER": 1,
    # Writes through ConditionalWriteMixin must carry If-Match (428 without it).
    "REQUIRE_IF_MATCH": False,
}


class ScaleSettings:
    """Attribute access to DRF_SCALE with defaults; reloaded on setting_changed."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        configured = getattr(settings, "DRF_SCALE", {})
        unknown = set(configured) - set(self.defaults)
        if unknown:
            raise RuntimeError(f"Unknown DRF_SCALE settings: {', '.join(sorted(unknown))}")
        return configured

    def __getattr__(self, name: str) -> Any:
        if name not in self.defaults:
            raise AttributeError(f"Invalid drf-scale setting: {name!r}")
        if name not in self._cache:
            self._cache[name] = self.user_settings.get(name, self.defaults[name])
        return self._cache[name]

    def reload(self) -> None:
        self._cache.clear()


scale_settings = ScaleSettings(DEFAULTS)

QUERY_CHECK_MODES = ("off", "log", "raise")


def query_checks_mode() -> str:
    """QUERY_CHECKS resolved: what the middleware does with budget and N+1 findings."""
    mode = scale_settings.QUERY_CHECKS
    if mode is None:
        return "log" if settings.DEBUG else "off"
    if mode not in QUERY_CHECK_MODES:
        raise RuntimeError(f"DRF_SCALE QUERY_CHECKS must be one of {QUERY_CHECK_MODES} or None")
    return mode


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "DRF_SCALE":
        scale_settings.reload()


setting_changed.connect(_reload)
