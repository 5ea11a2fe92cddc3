"""Recording the SQL queries run in a block of code, over every database alias.

One execute_wrapper is installed on each connection when it opens. It records a
query only while a recorder is active in the current context (a ContextVar, so
it follows sync and async code alike); otherwise it costs one lookup.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper


@dataclass(slots=True)
class QueryRecord:
    """One executed query."""

    sql: str
    params: Any
    duration: float
    alias: str


@dataclass
class QueryLog:
    """The queries recorded while a recorder was active."""

    queries: list[QueryRecord] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.queries)

    @property
    def duration(self) -> float:
        """Total database time in seconds."""
        return sum(q.duration for q in self.queries)


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
            entry = QueryRecord(sql, params, time.perf_counter() - start, alias)
            for log in logs:
                log.queries.append(entry)

    record.drf_scale_recorder = True  # type: ignore[attr-defined]
    return record


def install_recorder(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """connection_created receiver: add the recorder once per connection object."""
    if not any(getattr(w, "drf_scale_recorder", False) for w in connection.execute_wrappers):
        connection.execute_wrappers.append(_make_recorder(connection.alias))


@contextmanager
def record_queries() -> Iterator[QueryLog]:
    """Record every query run inside the block, on all aliases; nests freely."""
    log = QueryLog()
    token = _active_logs.set((*_active_logs.get(), log))
    try:
        yield log
    finally:
        _active_logs.reset(token)
