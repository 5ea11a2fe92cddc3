"""Recording, fingerprinting and limiting the SQL queries run in a block of code.

One execute_wrapper is installed on each connection: when it opens (this module's
``connection_created`` receiver), and on the current thread's connections when a recording
starts, so it works with or without ``drf_scale`` in INSTALLED_APPS. It records a query only
while a recorder is active in the current context (a ContextVar, so it follows sync and async
code alike); otherwise it costs one lookup. ``record_queries()`` keeps SQL, parameters, duration
and alias; ``capture_queries()`` also walks the stack of each query for its call site and the
serializer field being rendered, a cost paid only while capturing.
"""

from __future__ import annotations

import functools
import os
import re
import site
import sys
import sysconfig
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ContextDecorator, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

import django
import rest_framework
from django.core.handlers.base import BaseHandler
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from rest_framework.fields import Field
from rest_framework.relations import ManyRelatedField
from rest_framework.serializers import ListSerializer, Serializer

from drf_scale.conf import scale_settings

__all__ = [
    "NPlusOneDetected",
    "QueryBudgetExceeded",
    "QueryCheckFailed",
    "QueryLog",
    "assert_constant_queries",
    "capture_queries",
    "query_budget",
    "record_queries",
]

Function = TypeVar("Function", bound=Callable[..., Any])


# Fingerprints: the same statement with other values is the same fingerprint.

_FINGERPRINT_STEPS = tuple(
    (re.compile(pattern, flags), replacement)
    for pattern, replacement, flags in (
        (r"\s+", " ", 0),
        (r"'(?:[^']|'')*'", "?", 0),  # string literals
        (r"%\(\w+\)s|%s|\$\d+", "?", 0),  # placeholders of the DB-API styles
        (r"(?<![\w.\"])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b", "?", 0),  # numbers outside names
        (r"\b(IN) ?\( ?\?(?: ?, ?\?)* ?\)", r"\1 (...)", re.IGNORECASE),
        (r"\b(VALUES) ?\([^()]*\)(?: ?, ?\([^()]*\))*", r"\1 (...)", re.IGNORECASE),
    )
)


@functools.lru_cache(maxsize=4096)
def fingerprint(sql: str) -> str:
    """``sql`` with literals and parameters as ``?``, IN and VALUES lists collapsed."""
    for pattern, replacement in _FINGERPRINT_STEPS:
        sql = pattern.sub(replacement, sql)
    return sql.strip()


# Where a query comes from: the first frame of the project's own code, the field being rendered.

_LIBRARY_DIRS = tuple(
    {
        *(os.path.dirname(path) for path in (django.__file__, rest_framework.__file__, __file__)),
        *site.getsitepackages(),
        *(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")),
    }
)
_RENDERING_FIELD = Serializer.to_representation.__code__  # local ``field``: the one rendering
_ITERATING = {
    ListSerializer.to_representation.__code__,
    ManyRelatedField.to_representation.__code__,
}
# Django's handler: the frames above it called the request, they did not serve it.
_HANDLING = {BaseHandler.get_response.__code__, BaseHandler.get_response_async.__code__}


@functools.lru_cache(maxsize=1024)
def _is_library(filename: str) -> bool:
    """Django, DRF, drf-scale, an installed package, the standard library or generated code."""
    return filename.startswith(("<", *(directory + os.sep for directory in _LIBRARY_DIRS)))


@functools.lru_cache(maxsize=1024)
def _display_path(filename: str) -> str:
    relative = os.path.relpath(filename)
    return filename if relative.startswith("..") else relative


def field_path(serializer_field: Field) -> str:
    """``ProductSerializer.tags[].name``: where a bound field sits in its serializer tree."""
    parts: list[str] = []
    node = serializer_field
    while node.parent is not None:
        parent = node.parent
        if not isinstance(parent, ListSerializer | ManyRelatedField):
            parts.append(f".{node.field_name}")
        elif parent.parent is not None:
            parts.append("[]")
        node = parent
    root = node.child if isinstance(node, ListSerializer) else node
    return type(root).__name__ + "".join(reversed(parts))


def _origin(frame: FrameType | None) -> tuple[str | None, str | None, str | None]:
    """The call site, the serializer field path and the serializer method of the query run
    under ``frame``. The call site is the first frame of the project's code inside the request
    (frames above Django's handler called the request: a test, a management command); the
    method is that frame's when it is a serializer's (``ProductSerializer.to_representation``).
    """
    call_site = path = method = None
    while frame is not None and (call_site is None or path is None):
        code = frame.f_code
        if code in _HANDLING:
            break
        if call_site is None and not _is_library(code.co_filename):
            call_site = f"{_display_path(code.co_filename)}:{frame.f_lineno} in {code.co_qualname}"
            if isinstance(frame.f_locals.get("self"), Field):
                method = code.co_qualname
        if path is None and code is _RENDERING_FIELD:
            rendering = frame.f_locals.get("field")
            path = field_path(rendering if rendering is not None else frame.f_locals["self"])
        elif path is None and code in _ITERATING:
            path = field_path(frame.f_locals["self"])
        frame = frame.f_back
    return call_site, path, method


# Recording.


@dataclass(slots=True)
class QueryRecord:
    """One executed query; call site and field path are set by ``capture_queries()``."""

    sql: str
    params: Any
    duration: float
    alias: str
    call_site: str | None = None
    field_path: str | None = None
    method: str | None = None  # the serializer method at the call site, when it is one

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.sql)


@dataclass
class QueryGroup:
    """Queries sharing a fingerprint (and a call site, when grouped by it)."""

    fingerprint: str
    queries: list[QueryRecord]

    @property
    def count(self) -> int:
        return len(self.queries)

    @property
    def call_sites(self) -> list[str]:
        return list(dict.fromkeys(q.call_site for q in self.queries if q.call_site))

    @property
    def field_paths(self) -> list[str]:
        return list(dict.fromkeys(q.field_path for q in self.queries if q.field_path))

    @property
    def methods(self) -> list[str]:
        """The serializer methods that ran these queries (``Serializer.to_representation``)."""
        return list(dict.fromkeys(q.method for q in self.queries if q.method))

    def describe(self, count_label: str | None = None) -> str:
        """The fingerprint with its count, call sites and field paths, indented for a report."""
        lines = [f"  {count_label or self.count} x {self.fingerprint}"]
        lines += [f"      at {site}" for site in self.call_sites]
        if self.field_paths:
            lines.append(f"      rendering {', '.join(self.field_paths)}")
        return "\n".join(lines)


def _grouped(queries: Iterable[QueryRecord], *, by_call_site: bool) -> list[QueryGroup]:
    groups: dict[tuple[str, str | None], QueryGroup] = {}
    for query in queries:
        key = (query.fingerprint, query.call_site if by_call_site else None)
        groups.setdefault(key, QueryGroup(key[0], [])).queries.append(query)
    return sorted(groups.values(), key=lambda group: -group.count)


@dataclass
class QueryLog:
    """The queries recorded while a recorder was active."""

    queries: list[QueryRecord] = field(default_factory=list)
    detail: bool = False

    @property
    def count(self) -> int:
        return len(self.queries)

    @property
    def duration(self) -> float:
        """Total database time in seconds."""
        return sum(q.duration for q in self.queries)

    def groups(self) -> list[QueryGroup]:
        """The queries by fingerprint and call site, most repeated first."""
        return _grouped(self.queries, by_call_site=True)

    def by_fingerprint(self) -> list[QueryGroup]:
        """The queries by fingerprint alone, whatever their call sites, most repeated first."""
        return _grouped(self.queries, by_call_site=False)

    def repeated(self, threshold: int) -> list[QueryGroup]:
        """Suspected N+1s: one fingerprint from one call site ``threshold`` times or more."""
        return [group for group in self.groups() if group.count >= threshold]

    def fingerprint_counts(self) -> Counter[str]:
        return Counter(q.fingerprint for q in self.queries)


_active_logs: ContextVar[tuple[QueryLog, ...]] = ContextVar("drf_scale_query_logs", default=())


def _make_recorder(alias: str) -> Callable[..., Any]:
    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        logs = _active_logs.get()
        if not logs:
            return execute(sql, params, many, context)
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            duration = time.perf_counter() - start
            detail = any(log.detail for log in logs)
            call_site, path, method = _origin(sys._getframe(1)) if detail else (None, None, None)
            entry = QueryRecord(sql, params, duration, alias, call_site, path, method)
            for log in logs:
                log.queries.append(entry)

    record.drf_scale_recorder = True  # type: ignore[attr-defined]
    return record


def install_recorder(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """connection_created receiver: add the recorder once per connection object."""
    if not any(getattr(w, "drf_scale_recorder", False) for w in connection.execute_wrappers):
        connection.execute_wrappers.append(_make_recorder(connection.alias))


connection_created.connect(install_recorder, dispatch_uid="drf_scale.recorder")
# Whether this thread's connections have the recorder: later ones get it as they open.
_this_thread = threading.local()


@contextmanager
def record_queries(*, detail: bool = False) -> Iterator[QueryLog]:
    """Record every query run inside the block, on all aliases; nests freely.

    ``detail=True`` also records each query's call site and serializer field path.
    """
    if not getattr(_this_thread, "installed", False):  # once per thread, not per request
        for alias in connections:  # this thread's connections, opened before this module or not
            install_recorder(None, connections[alias])
        _this_thread.installed = True
    log = QueryLog(detail=detail)
    token = _active_logs.set((*_active_logs.get(), log))
    try:
        yield log
    finally:
        _active_logs.reset(token)


def capture_queries() -> AbstractContextManager[QueryLog]:
    """``record_queries(detail=True)``: each query with its call site and field path."""
    return record_queries(detail=True)


# Checking: budgets and N+1s.


class QueryCheckFailed(Exception):
    """Code ran more queries than it should; the message groups them by fingerprint."""

    def __init__(self, summary: str, groups: Sequence[QueryGroup]) -> None:
        self.summary = summary
        self.groups = list(groups)
        super().__init__("\n".join([summary, *(group.describe() for group in groups)]))


class QueryBudgetExceeded(QueryCheckFailed):
    """More queries than the budget allows."""


class NPlusOneDetected(QueryCheckFailed):
    """The same query repeated from the same place: one query per row."""


def find_problems(
    log: QueryLog, *, budget: int | None = None, threshold: int | None = None
) -> list[QueryCheckFailed]:
    """The N+1s and the budget overrun in ``log``, in that order; None skips a check."""
    problems: list[QueryCheckFailed] = []
    repeated = log.repeated(threshold) if threshold is not None else []
    if repeated:
        summary = f"N+1 queries (the same query {threshold} times or more from one place):"
        problems.append(NPlusOneDetected(summary, repeated))
    if budget is not None and log.count > budget:
        summary = f"{log.count} queries, over the budget of {budget}:"
        problems.append(QueryBudgetExceeded(summary, log.groups()))
    return problems


class query_budget(ContextDecorator):
    """Raise QueryBudgetExceeded when the block or function runs more than ``limit`` queries.

    ``limit`` defaults to the QUERY_BUDGET setting. A decorated view function raises in every
    QUERY_CHECKS mode, and the middleware takes ``limit`` as its budget; to leave enforcement
    to the middleware, set a ``query_budget`` attribute on the view function or class instead.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit

    def _recreate_cm(self) -> query_budget:
        return type(self)(self.limit)

    def __call__(self, function: Function) -> Function:
        wrapped = super().__call__(function)
        wrapped.query_budget = self.limit  # type: ignore[attr-defined]
        return wrapped

    def __enter__(self) -> QueryLog:
        self._recording = capture_queries()
        self.log = self._recording.__enter__()
        return self.log

    def __exit__(self, *exc_info: Any) -> None:
        self._recording.__exit__(*exc_info)
        limit = scale_settings.QUERY_BUDGET if self.limit is None else self.limit
        if exc_info[0] is None:
            for problem in find_problems(self.log, budget=limit):
                raise problem


def growth(before: QueryLog, after: QueryLog) -> list[tuple[int, QueryGroup]]:
    """The fingerprints ``after`` ran more often than ``before``, with their earlier count."""
    counts = before.fingerprint_counts()
    return [
        (counts[group.fingerprint], group)
        for group in _grouped(after.queries, by_call_site=False)
        if group.count > counts[group.fingerprint]
    ]


def assert_constant_queries(
    run: Callable[[int], object],
    sizes: tuple[int, int] = (2, 10),
    *,
    setup: Callable[[int], object] | None = None,
) -> None:
    """Fail when ``run(size)`` runs more queries at the second size than at the first.

    ``run`` takes a page size or a data size; ``setup(size)``, run first and not counted,
    can create the data. The error names each fingerprint that grew.
    """
    logs = []
    for size in sizes:
        if setup is not None:
            setup(size)
        with capture_queries() as log:
            run(size)
        logs.append(log)
    grown = growth(*logs)
    if grown:
        lines = [
            f"Queries grew from {logs[0].count} at size {sizes[0]} "
            f"to {logs[1].count} at size {sizes[1]}:",
            *(group.describe(f"{earlier} -> {group.count}") for earlier, group in grown),
        ]
        raise AssertionError("\n".join(lines))
