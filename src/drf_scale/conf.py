"""The DRF_SCALE settings dict with its defaults, read like DRF's api_settings.

    DRF_SCALE = {"SERVER_TIMING": True}

Read values as attributes of ``scale_settings``. The settings are checked in one place,
``validate()``: ``manage.py check`` reports its problems (drf_scale.E060 to E063), and the
first read after a (re)load raises ImproperlyConfigured naming them, so a typo or a bad value
never passes silently. Reads are cached until DRF_SCALE changes; the settings in
IMPORT_STRINGS are imported once and read as the object they name.

Caches derived from the settings register with ``scale_settings.on_change`` (or the
``scale_settings.derived`` decorator for ``functools.cache`` functions): the one
``setting_changed`` receiver, here, clears them all.
"""

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from drf_scale.db import SERVERS
from drf_scale.redis_urls import parse_url

__all__ = ["scale_settings"]

DEFAULTS: dict[str, Any] = {
    # Add the Server-Timing header to every response.
    "SERVER_TIMING": True,
    # Per-request query budget; a view's ``query_budget`` attribute overrides it.
    "QUERY_BUDGET": 5,
    # The same query from the same call site this many times in one request is an N+1.
    "NPLUSONE_THRESHOLD": 3,
    # Per-request budget and N+1 checks: "off", "log" or "raise"; None: "log" if DEBUG else "off".
    "QUERY_CHECKS": None,
    # Django 6.1+: how instances of planned querysets fetch what the plan did not load:
    # "peers" (one query per relation for all the rows), "raise" (FieldFetchBlocked) or
    # "one" (Django's default, a query per row).
    "UNPLANNED_FETCH": "peers",
    # Count strategy of the drf_scale paginators: dotted path to a CountStrategy class.
    "COUNT_STRATEGY": "drf_scale.counting.HybridCount",
    # The pagination_class of ScaleModelViewSet and ScaleReadOnlyModelViewSet.
    "PAGINATION_CLASS": "drf_scale.pagination.KeysetPagination",
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
    # A serializer some of whose fields do not compile: render those from the page's
    # instances and compile the others, reading their columns off the same instances (one
    # query, as DRF's). False: such a serializer renders through DRF (BENCHMARKS.md, the zoo).
    "PARTIAL_COMPILATION": True,
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
    # Edge (drf_scale.edge): the header public cached responses name their surrogate keys in,
    # "Surrogate-Key" (Fastly), "xkey" (Varnish) or "Cache-Tag" (Cloudflare); None: no keys.
    "EDGE_KEY_HEADER": None,
    # Edge: responses naming more keys than this are not kept by the edge (s-maxage=0).
    "EDGE_MAX_KEYS": 64,
    # Edge: a dotted path to the drf_scale.edge.Purger subclass that purges keys after a
    # commit, and the keyword arguments it is built with; None: nothing is purged.
    "EDGE_PURGER": None,
    "EDGE_PURGER_OPTIONS": {},
    # Edge: seconds each purge request may take, and the retries of one, after a commit.
    "EDGE_PURGE_TIMEOUT": 1.0,
    "EDGE_PURGE_RETRIES": 1,
    # Edge: seconds after a failed purge during which writes do not ask the edge (their keys
    # go to the task queue at once).
    "EDGE_PURGE_COOLDOWN": 5.0,
    # Edge: keys a process keeps for its next purge when the task queue cannot take them.
    "EDGE_PURGE_QUEUE_SIZE": 10000,
    # DatabaseUnavailableMiddleware: the Retry-After seconds of its 503s.
    "DATABASE_RETRY_AFTER": 1,
    # Writes through ConditionalWriteMixin must carry If-Match (428 without it).
    "REQUIRE_IF_MATCH": False,
    # Replicas (drf_scale.routers): seconds of replay lag past which a replica is skipped.
    "REPLICA_MAX_LAG": 5.0,
    # Replicas: milliseconds a replica's replay position and lag are reused before sampling.
    "REPLICA_SAMPLE_MS": 20,
    # Replicas: seconds a replica that failed is skipped before it is sampled again.
    "REPLICA_RETRY_AFTER": 1.0,
    # Replicas: seconds the read-position cookie a write sets lives.
    "READ_POSITION_MAX_AGE": 300,
}


# Settings given as a dotted path (or the object itself), imported once per (re)load.
IMPORT_STRINGS: tuple[str, ...] = ("COUNT_STRATEGY", "PAGINATION_CLASS")

QUERY_CHECK_MODES = ("off", "log", "raise")
AGGREGATE_MISS_MODES = ("compute", "accept")
# The header each edge reads surrogate keys from, and how it separates them.
EDGE_KEY_HEADERS = {"Surrogate-Key": " ", "xkey": " ", "Cache-Tag": ","}
REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://")

# The system check ids of the settings problems (drf_scale.checks.check_settings).
UNKNOWN_KEY = "drf_scale.E060"
BAD_TYPE = "drf_scale.E061"
BAD_CHOICE = "drf_scale.E062"
BAD_IMPORT = "drf_scale.E063"


@dataclass(frozen=True, slots=True)
class Spec:
    """What a setting accepts: ``expected`` says it in words (for messages).

    ``choices``: the value must be one of them (E062). ``base``: an import string, a dotted
    path or the class itself, of a subclass of the class ``base`` names (E063). Else
    ``accepts(value)`` (E061).
    """

    expected: str
    accepts: Callable[[Any], bool] = lambda value: True
    choices: tuple[Any, ...] = ()
    base: str = ""


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _flag() -> Spec:
    return Spec("True or False", lambda value: isinstance(value, bool))


def _integer(minimum: int, *, optional: bool = False) -> Spec:
    expected = f"an integer >= {minimum}" + (" or None" if optional else "")
    return Spec(expected, lambda v: (optional and v is None) or _is_int(v, minimum))


def _seconds(minimum: float = 0) -> Spec:
    def accepts(value: Any) -> bool:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and value >= minimum

    return Spec(f"a number of seconds >= {minimum}", accepts)


def _text() -> Spec:
    return Spec("a non-empty string", lambda value: isinstance(value, str) and bool(value))


def _choice(*choices: Any) -> Spec:
    return Spec(f"one of {', '.join(map(repr, choices))}", choices=choices)


def _redis_url(value: Any) -> bool:
    """None, or a URL of one of REDIS_URL_SCHEMES (Sentinel and Cluster ones must parse)."""
    if not (isinstance(value, str) and value.startswith(REDIS_URL_SCHEMES)):
        return value is None
    try:
        parse_url(value)
    except ValueError:
        return False
    return True


def _modules(value: Any) -> bool:
    return value is None or (
        isinstance(value, list | tuple) and all(isinstance(name, str) and name for name in value)
    )


SPECS: dict[str, Spec] = {
    "SERVER_TIMING": _flag(),
    "QUERY_BUDGET": _integer(0, optional=True),
    "NPLUSONE_THRESHOLD": _integer(2),
    "QUERY_CHECKS": _choice(None, *QUERY_CHECK_MODES),
    "UNPLANNED_FETCH": _choice("peers", "raise", "one"),
    "PARTIAL_COMPILATION": _flag(),
    "COUNT_STRATEGY": Spec(
        "a dotted path to a CountStrategy subclass", base="drf_scale.counting.CountStrategy"
    ),
    "PAGINATION_CLASS": Spec(
        "a dotted path to a DRF pagination class",
        base="rest_framework.pagination.BasePagination",
    ),
    "COUNT_HYBRID_THRESHOLD": _integer(0),
    "COUNT_CACHE_TTL": _seconds(),
    "COUNT_CACHE": _text(),
    "MAX_OFFSET": _integer(0),
    "SERVER_MODE": _choice(*SERVERS),
    "WORKERS": _integer(0, optional=True),
    "AGGREGATE_CACHE": _text(),
    "AGGREGATE_DEBOUNCE": _seconds(),
    "AGGREGATE_ON_MISS": _choice(*AGGREGATE_MISS_MODES),
    "AGGREGATE_MISS_WAIT": _seconds(),
    "AGGREGATE_RETRY_AFTER": _integer(0),
    "AGGREGATE_COMPUTE_TIMEOUT": _seconds(1),
    "FAST_READS": _flag(),
    "CACHE_URL": Spec(
        f"None or a URL starting with {', '.join(REDIS_URL_SCHEMES)} (Sentinel: "
        "redis+sentinel://[:password@]host:port[,host:port...]/service[/db]; Cluster: "
        "redis+cluster://[:password@]host:port[,host:port...])",
        _redis_url,
    ),
    "CACHE_ENABLED": _flag(),
    "CACHE_VIEW_MODULES": Spec("None or a list of module names", _modules),
    "CACHE_TTL": _seconds(1),
    "CACHE_KEY_PREFIX": _text(),
    "CACHE_VERSION": Spec(
        "a string or an integer",
        lambda value: isinstance(value, str | int) and not isinstance(value, bool),
    ),
    "CACHE_LEASE_MS": _integer(1),
    "CACHE_LEASE_WAIT": _seconds(),
    "CACHE_SOCKET_TIMEOUT": _seconds(0.001),
    "CACHE_BREAKER_FAILURES": _integer(1),
    "CACHE_BREAKER_COOLDOWN": _seconds(),
    "CACHE_RENEW_INTERVAL": _seconds(),
    "CACHE_S_MAXAGE": _integer(0),
    "CACHE_STALE_WHILE_REVALIDATE": _integer(0),
    "EDGE_KEY_HEADER": _choice(None, *EDGE_KEY_HEADERS),
    "EDGE_MAX_KEYS": _integer(1),
    "EDGE_PURGER": Spec(
        "None or a dotted path to a drf_scale.edge.Purger subclass",
        lambda value: value is None or (isinstance(value, str) and "." in value),
    ),
    "EDGE_PURGER_OPTIONS": Spec(
        "a dict of keyword arguments",
        lambda value: isinstance(value, dict) and all(isinstance(k, str) for k in value),
    ),
    "EDGE_PURGE_TIMEOUT": _seconds(0.001),
    "EDGE_PURGE_RETRIES": _integer(0),
    "EDGE_PURGE_COOLDOWN": _seconds(),
    "EDGE_PURGE_QUEUE_SIZE": _integer(0),
    "DATABASE_RETRY_AFTER": _integer(0),
    "REQUIRE_IF_MATCH": _flag(),
    "REPLICA_MAX_LAG": _seconds(),
    "REPLICA_SAMPLE_MS": _integer(0),
    "REPLICA_RETRY_AFTER": _seconds(),
    "READ_POSITION_MAX_AGE": _integer(0),
}
assert SPECS.keys() == DEFAULTS.keys(), "every setting has a spec"
assert all(SPECS[key].base for key in IMPORT_STRINGS), "import strings name their base class"


class Problem(NamedTuple):
    """A bad DRF_SCALE entry: the system check id that reports it, the key, what is wrong."""

    id: str
    key: str | None
    message: str
    hint: str | None = None


class _ImportFailed(Exception):
    pass


def _import(key: str, value: Any) -> Any:
    """The class an import string setting names; _ImportFailed says why it cannot be."""
    base = import_string(SPECS[key].base)
    given = repr(value)
    if isinstance(value, str):
        try:
            value = import_string(value)
        except Exception as exc:  # ImportError, or whatever the module raised importing
            raise _ImportFailed(f"cannot import {value!r}: {exc}") from exc
    if not (isinstance(value, type) and issubclass(value, base)):
        raise _ImportFailed(f"{given} is not a subclass of {SPECS[key].base}")
    return value


def validate(configured: Any, *, imports: bool = True) -> list[Problem]:
    """Every problem of a DRF_SCALE value: unknown keys, wrong types, values outside their
    choices and, with ``imports``, import strings that do not import. The one place settings
    are checked (the system check and the first read both use it)."""
    if not isinstance(configured, Mapping):
        message = f"DRF_SCALE must be a dict, not {type(configured).__name__}."
        return [Problem(BAD_TYPE, None, message)]
    problems = []
    for key, value in configured.items():
        spec = SPECS.get(key)
        if spec is None:
            close = difflib.get_close_matches(str(key), SPECS, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else "See drf_scale.conf.DEFAULTS."
            problems.append(Problem(UNKNOWN_KEY, key, f"Unknown DRF_SCALE setting {key!r}.", hint))
            continue
        where = f"DRF_SCALE[{key!r}]"
        if spec.choices:
            if not any(value == choice and type(value) is type(choice) for choice in spec.choices):
                message = f"{where} must be {spec.expected}, not {value!r}."
                problems.append(Problem(BAD_CHOICE, key, message))
        elif spec.base:
            if not isinstance(value, str | type):
                message = f"{where} must be {spec.expected}, not {value!r}."
                problems.append(Problem(BAD_TYPE, key, message))
            elif imports:
                try:
                    _import(key, value)
                except _ImportFailed as exc:
                    problems.append(Problem(BAD_IMPORT, key, f"{where}: {exc}."))
        elif not spec.accepts(value):
            problems.append(
                Problem(BAD_TYPE, key, f"{where} must be {spec.expected}, not {value!r}.")
            )
    return problems


def user_settings() -> Any:
    """DRF_SCALE as the project sets it (not validated)."""
    return getattr(settings, "DRF_SCALE", {})


def _error(problems: list[Problem]) -> ImproperlyConfigured:
    listed = " ".join(f"{problem.message} ({problem.id})" for problem in problems)
    return ImproperlyConfigured(f"{listed} `manage.py check` lists the DRF_SCALE problems.")


class _Clearable(Protocol):
    def cache_clear(self) -> None: ...


Callback = TypeVar("Callback", bound=Callable[[], object])
Cached = TypeVar("Cached", bound=_Clearable)


class ScaleSettings:
    """Attribute access to DRF_SCALE with defaults, validated once and cached per (re)load.

    A read stores the value as an instance attribute, so later reads are plain attribute
    lookups; ``reload()`` drops them.
    """

    def __init__(self, defaults: dict[str, Any], import_strings: Iterable[str] = ()) -> None:
        self.defaults = defaults
        self.import_strings = frozenset(import_strings)
        self._read: set[str] = set()
        self._user: Mapping[str, Any] | None = None
        self._callbacks: list[tuple[Callable[[], object], frozenset[str]]] = []

    @property
    def user_settings(self) -> Mapping[str, Any]:
        """DRF_SCALE, validated on the first read after a (re)load: a problem raises
        ImproperlyConfigured, at every read until the settings change."""
        if self._user is None:
            configured = user_settings()
            problems = validate(configured, imports=False)  # imported at their first read
            if problems:
                raise _error(problems)
            self._user = configured
        return self._user

    def __getattr__(self, name: str) -> Any:
        if name not in self.defaults:
            raise AttributeError(f"Invalid drf-scale setting: {name!r}")
        value = self.user_settings.get(name, self.defaults[name])
        if name in self.import_strings:
            try:
                value = _import(name, value)
            except _ImportFailed as exc:
                raise _error([Problem(BAD_IMPORT, name, f"DRF_SCALE[{name!r}]: {exc}.")]) from exc
        self._read.add(name)
        setattr(self, name, value)
        return value

    def reload(self) -> None:
        """Forget what was read: the next read validates and reads DRF_SCALE again."""
        for name in self._read:
            self.__dict__.pop(name, None)
        self._read.clear()
        self._user = None

    def on_change(self, callback: Callback, *, also: Iterable[str] = ()) -> Callback:
        """Call ``callback()`` after DRF_SCALE, or one of the Django settings ``also`` names,
        changes (``override_settings``): for what is derived from them. A decorator too."""
        self._callbacks.append((callback, frozenset({"DRF_SCALE", *also})))
        return callback

    def derived(self, cached: Cached) -> Cached:
        """Decorator of a ``functools.cache`` function derived from DRF_SCALE: cleared when
        it changes."""
        self.on_change(cached.cache_clear)
        return cached

    def setting_changed(self, setting: str) -> None:
        if setting == "DRF_SCALE":
            self.reload()
        for callback, settings_ in self._callbacks:
            if setting in settings_:
                callback()


scale_settings = ScaleSettings(DEFAULTS, IMPORT_STRINGS)


def query_checks_mode() -> str:
    """QUERY_CHECKS resolved: what the middleware does with budget and N+1 findings."""
    mode: str | None = scale_settings.QUERY_CHECKS
    if mode is None:
        return "log" if settings.DEBUG else "off"
    return mode


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    """The one receiver: reload DRF_SCALE and clear every cache derived from it."""
    scale_settings.setting_changed(setting)


setting_changed.connect(_setting_changed, dispatch_uid="drf_scale.conf")
