"""Aggregates precomputed on Celery and served from the cache.

An aggregate is a named function of a few declared parameters whose result is
costly to compute (sales per category, top products). Register it, and serve it
with :class:`AggregateView`::

    @aggregate("top-products", refresh_every=60, max_age=300,
               depends_on=[OrderLine, Product], params={"days": range(1, 366)})
    def top_products(days: int = 30) -> list[dict]: ...

    class TopProductsView(AggregateView):
        aggregate = top_products

Celery recomputes the "hot" parameter sets every ``refresh_every`` seconds
(:func:`beat_schedule`) and ``AGGREGATE_DEBOUNCE`` seconds after a committed
write to a model in ``depends_on`` (a burst of writes gives one refresh). The
result is stored without expiry as ``{"value", "computed_at"}``: it is stale once
older than ``max_age``, and a stale result is still served while a refresh is
queued. A failed refresh retries with backoff and leaves the stored result alone.
Without a broker (CELERY_TASK_ALWAYS_EAGER) the same task runs in-process: at
commit after a write, and in the request that finds a result stale.
"""

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from inspect import Parameter, signature
from typing import Any
from urllib.parse import urlencode

from django.db.models import Model, signals
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from drf_scale.breaker import GuardedCache, guarded_cache
from drf_scale.conf import scale_settings
from drf_scale.oncommit import after_commit

__all__ = ["Aggregate", "AggregateView", "aggregate", "aggregate_response", "beat_schedule"]

try:
    from celery import shared_task
except ImportError as missing:  # check drf_scale.E051 says the same at startup
    raise ImportError('drf_scale.aggregates runs on Celery: pip install "drf-scale[celery]"') from (
        missing
    )

logger = logging.getLogger(__name__)

TASK_NAME = "drf_scale.aggregates.refresh_aggregate"
_POLL_INTERVAL = 0.05  # seconds between two looks at the cache while another request computes

_Params = dict[str, Any]

#: Every registered aggregate by name.
_registry: dict[str, "Aggregate"] = {}
#: Model label ("shop.OrderLine") -> the aggregates that read it.
_dependents: dict[str, list["Aggregate"]] = {}
_MISSING = object()


def _cache() -> GuardedCache:
    """The results' cache: a failing one is a miss (the result is computed), never an error."""
    return guarded_cache(scale_settings.AGGREGATE_CACHE)


def _canonical(params: _Params) -> str:
    return urlencode(sorted(params.items()))


def _describe(allowed: Collection[Any]) -> str:
    if isinstance(allowed, range) and allowed.step == 1:
        return f"an integer from {allowed.start} to {allowed[-1]}"
    return "one of: " + ", ".join(map(str, allowed))


@dataclass(frozen=True, slots=True)
class AggregateEntry:
    """A stored result and when its computation started (epoch seconds)."""

    value: Any
    computed_at: float

    def age(self) -> float:
        return max(0.0, time.time() - self.computed_at)


class Aggregate:
    """A registered aggregate: its function, schedule, dependencies and parameters.

    ``params`` maps each argument of ``func`` to its allowed values: a ``range`` or
    a finite collection. ``hot`` lists the parameter sets kept fresh by beat and by
    writes; by default the function's defaults, when every argument has one.
    """

    def __init__(
        self,
        name: str,
        func: Callable[..., Any],
        *,
        refresh_every: int,
        max_age: int,
        depends_on: Iterable[type[Model] | str] = (),
        params: Mapping[str, Collection[Any]] | None = None,
        hot: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        if refresh_every > max_age:
            raise ValueError(f"{name}: refresh_every ({refresh_every}) exceeds max_age ({max_age})")
        arguments = signature(func).parameters
        self.params = dict(params or {})
        if set(self.params) != set(arguments):
            raise ValueError(f"{name}: params must declare exactly the arguments {list(arguments)}")
        self.name = name
        self.func = func
        self.refresh_every = refresh_every
        self.max_age = max_age
        self.depends_on = [m if isinstance(m, str) else m._meta.label for m in depends_on]
        self.defaults = {
            arg: p.default for arg, p in arguments.items() if p.default is not Parameter.empty
        }
        if hot is None:
            hot = [{}] if len(self.defaults) == len(arguments) else []
        self.hot = [self.validate(p) for p in hot]

    def __repr__(self) -> str:
        return f"<Aggregate {self.name}>"

    def validate(self, query: Mapping[str, Any]) -> _Params:
        """The typed parameters of ``query``; a ValidationError (400) names each bad one."""
        params: _Params = {}
        errors: dict[str, list[str]] = {}
        for name, allowed in self.params.items():
            raw = query.get(name, self.defaults.get(name, _MISSING))
            if raw is _MISSING:
                errors[name] = ["This parameter is required."]
                continue
            try:
                value = type(next(iter(allowed)))(raw)
            except (TypeError, ValueError):
                value = _MISSING
            if value in allowed:
                params[name] = value
            else:
                errors[name] = [f"Must be {_describe(allowed)}."]
        if errors:
            raise ValidationError(errors)
        return params

    def key(self, params: _Params, suffix: str = "") -> str:
        """The cache key of the result for ``params`` (or of its ``queued``/``computing`` mark)."""
        key = f"drf_scale:agg:{self.name}:{_canonical(params)}"
        return f"{key}:{suffix}" if suffix else key

    def read(self, params: _Params) -> AggregateEntry | None:
        """The stored result, without computing anything."""
        data = _cache().get(self.key(params))
        return None if data is None else AggregateEntry(data["value"], data["computed_at"])

    def store(self, params: _Params, entry: AggregateEntry) -> None:
        _cache().set(
            self.key(params), {"value": entry.value, "computed_at": entry.computed_at}, None
        )

    def is_stale(self, entry: AggregateEntry) -> bool:
        return entry.age() > self.max_age

    def get(self, params: _Params) -> AggregateEntry | None:
        """The stored result; when stale, a refresh is queued unless one is running."""
        entry = self.read(params)
        if entry is None:
            return self._fill(params)
        if self.is_stale(entry) and not _cache().get(self.key(params, "computing")):
            self.schedule_refresh(params)
        return entry

    def _fill(self, params: _Params) -> AggregateEntry | None:
        """A missing result: one caller computes it while the others wait for it.

        They wait up to AGGREGATE_MISS_WAIT seconds. With AGGREGATE_ON_MISS "accept"
        a refresh is queued instead. None: the result is not there yet.
        """
        if scale_settings.AGGREGATE_ON_MISS == "accept":
            self.schedule_refresh(params)
            return self.read(params)  # already there when tasks run in-process
        timeout = scale_settings.AGGREGATE_COMPUTE_TIMEOUT
        if _cache().add(self.key(params, "computing"), True, timeout, on_failure=True):
            return self._compute(params)
        deadline = time.monotonic() + scale_settings.AGGREGATE_MISS_WAIT
        while time.monotonic() < deadline:
            time.sleep(_POLL_INTERVAL)
            if (entry := self.read(params)) is not None:
                return entry
        return None

    def refresh(self, params: _Params) -> AggregateEntry:
        """Compute and store now (the Celery task's body); a failure keeps the stored result."""
        cache = _cache()
        cache.set(self.key(params, "computing"), True, scale_settings.AGGREGATE_COMPUTE_TIMEOUT)
        cache.delete(self.key(params, "queued"))  # from now on, a write queues another refresh
        return self._compute(params)

    def _compute(self, params: _Params) -> AggregateEntry:
        started = time.time()
        try:
            entry = AggregateEntry(self.func(**params), started)
            self.store(params, entry)
            return entry
        finally:
            _cache().delete(self.key(params, "computing"))

    def schedule_refresh(self, params: _Params, *, delay: int = 0) -> None:
        """Queue a refresh in ``delay`` seconds, unless one is queued and not started yet.

        The mark lasts until the task starts (or ``max_age``, should the message be
        lost). A broker that cannot take the message is logged, never raised.
        """
        if not _cache().add(self.key(params, "queued"), True, self.max_age, on_failure=True):
            return
        try:
            refresh_aggregate.apply_async((self.name, params), countdown=delay)
        except Exception:  # the stored result is still served: never fail the request
            logger.exception("Could not queue a refresh of aggregate %s %s", self.name, params)


def aggregate(
    name: str,
    *,
    refresh_every: int,
    max_age: int,
    depends_on: Iterable[type[Model] | str] = (),
    params: Mapping[str, Collection[Any]] | None = None,
    hot: Iterable[Mapping[str, Any]] | None = None,
) -> Callable[[Callable[..., Any]], Aggregate]:
    """Register the decorated function as the aggregate ``name`` (see :class:`Aggregate`)."""

    def register(func: Callable[..., Any]) -> Aggregate:
        if name in _registry:
            raise ValueError(f"Aggregate {name!r} is already registered")
        agg = Aggregate(
            name,
            func,
            refresh_every=refresh_every,
            max_age=max_age,
            depends_on=depends_on,
            params=params,
            hot=hot,
        )
        _registry[name] = agg
        for label in agg.depends_on:
            _dependents.setdefault(label, []).append(agg)
            signals.post_save.connect(_on_write, sender=label)
            signals.post_delete.connect(_on_write, sender=label)
        return agg

    return register


@shared_task(
    name=TASK_NAME,
    autoretry_for=(Exception,),
    retry_backoff=True,  # 1, 2, 4, 8, 16 s (with jitter)
    retry_backoff_max=300,
    max_retries=5,
    ignore_result=True,
)
def refresh_aggregate(name: str, params: _Params) -> None:
    """Recompute and store one aggregate for one parameter set."""
    _registry[name].refresh(params)


def beat_schedule() -> dict[str, dict[str, Any]]:
    """CELERY_BEAT_SCHEDULE entries: every hot parameter set, every ``refresh_every`` seconds.

    A message no worker took before the next one is due expires.
    """
    return {
        f"{agg.name}?{_canonical(params)}" if params else agg.name: {
            "task": TASK_NAME,
            "schedule": agg.refresh_every,
            "args": (agg.name, params),
            "options": {"expires": agg.refresh_every},
        }
        for agg in _registry.values()
        for params in agg.hot
    }


def _refresh_dependents(labels: Iterable[str], using: str) -> None:
    delay = scale_settings.AGGREGATE_DEBOUNCE
    for agg in {agg for label in labels for agg in _dependents.get(label, ())}:
        for params in agg.hot:
            refresh = partial(agg.schedule_refresh, params, delay=delay)
            after_commit(refresh, name=f"refresh of aggregate {agg.name}", using=using)


def _on_write(sender: type[Model], using: str, **kwargs: Any) -> None:
    _refresh_dependents([sender._meta.label], using)


def _on_m2m_change(
    sender: type[Model], instance: Model, model: type[Model], action: str, using: str, **kw: Any
) -> None:
    if action.startswith("post_"):
        _refresh_dependents({m._meta.label for m in (sender, type(instance), model)}, using)


signals.m2m_changed.connect(_on_m2m_change, dispatch_uid="drf_scale.aggregates")


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def aggregate_response(agg: Aggregate, query: Mapping[str, Any]) -> Response:
    """The stored result as ``{"computed_at", "age", "stale", "results"}`` with an Age header.

    400 on a bad parameter; 202 with Retry-After while it is being computed. Use it
    in a viewset action: ``return aggregate_response(top_products, request.query_params)``.
    """
    entry = agg.get(agg.validate(query))
    if entry is None:
        return Response(
            {"detail": "This result is being computed; retry shortly."},
            status=status.HTTP_202_ACCEPTED,
            headers={"Retry-After": str(scale_settings.AGGREGATE_RETRY_AFTER)},
        )
    age = entry.age()
    body = {
        "computed_at": _iso(entry.computed_at),
        "age": int(age),
        "stale": age > agg.max_age,
        "results": entry.value,
    }
    return Response(body, headers={"Age": str(int(age))})


class AggregateView(APIView):
    """GET serves the stored result of ``aggregate`` (see :func:`aggregate_response`).

    Subclass it with an ``aggregate`` attribute, or ``AggregateView.as_view(aggregate=...)``.
    """

    aggregate: Aggregate | None = None

    def get_aggregate(self) -> Aggregate:
        """The aggregate to serve; override to choose it per request."""
        assert self.aggregate is not None, f"{type(self).__name__} needs an `aggregate` attribute"
        return self.aggregate

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return aggregate_response(self.get_aggregate(), request.query_params)
