"""Per-request query counts and timings in a Server-Timing header, and query checks; 503s
while the database is unreachable; chunked request bodies read and limited like any other.

With QUERY_CHECKS on, the same recording also checks each request against its query budget
and for N+1 queries: "log" writes a readable report to the ``drf_scale.queries`` logger,
"raise" raises it. Off, the request pays for a count and a duration only.
"""

import io
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db import InterfaceError, InternalError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from drf_scale.conf import query_checks_mode, scale_settings
from drf_scale.queries import QueryLog, find_problems, record_queries

__all__ = [
    "ChunkedBodyMiddleware",
    "DatabaseUnavailableMiddleware",
    "RequestTiming",
    "ServerTimingMiddleware",
    "SyncAndAsyncMiddleware",
]

logger = logging.getLogger("drf_scale.queries")


@dataclass(frozen=True, slots=True)
class RequestTiming:
    """What one request cost; set on the response as ``response.timing``."""

    queries: int
    db_ms: float
    app_ms: float

    def header(self) -> str:
        return f'db;dur={self.db_ms:.2f};desc="{self.queries} queries", app;dur={self.app_ms:.2f}'


def view_query_budget(view: Callable[..., Any] | None) -> int | None:
    """The ``query_budget`` a view function or its class declares, or QUERY_BUDGET.

    A view that declares ``query_budget = None`` is not checked at all.
    """
    for owner in (view, getattr(view, "cls", None), getattr(view, "view_class", None)):
        if owner is not None and hasattr(owner, "query_budget"):
            return owner.query_budget
    return scale_settings.QUERY_BUDGET


class SyncAndAsyncMiddleware:
    """A middleware for sync and async stacks alike: ``call(request)`` in a sync one,
    ``acall(request)`` in an async one (no thread)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.acall(request)
        return self.call(request)

    def call(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError

    async def acall(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError


class ServerTimingMiddleware(SyncAndAsyncMiddleware):
    """Count the SQL queries of each request, add a Server-Timing header, check the queries.

    ``app`` is the time spent outside the database. Tests read the figures of a response
    from ``response.timing``. Sync and async (``acall`` in an async stack, no thread):
    the recording is a ContextVar, which ``sync_to_async`` carries into its thread, so the
    queries an async view runs there count for its request.
    """

    def call(self, request: HttpRequest) -> HttpResponse:
        with self.measure(request) as finish:
            return finish(self.get_response(request))

    async def acall(self, request: HttpRequest) -> HttpResponse:
        with self.measure(request) as finish:
            return finish(await self.get_response(request))

    @contextmanager
    def measure(self, request: HttpRequest) -> Iterator[Callable[[HttpResponse], HttpResponse]]:
        """Record the queries of the block; ``finish(response)`` sets the timing and header
        on the response and checks the queries."""
        mode = query_checks_mode()
        start = time.perf_counter()
        with record_queries(detail=mode != "off") as log:

            def finish(response: HttpResponse) -> HttpResponse:
                db_s = log.duration
                timing = RequestTiming(
                    queries=log.count,
                    db_ms=db_s * 1000,
                    app_ms=(time.perf_counter() - start - db_s) * 1000,
                )
                response.timing = timing  # type: ignore[attr-defined]
                if scale_settings.SERVER_TIMING:
                    response.headers["Server-Timing"] = timing.header()
                if mode != "off":
                    self.check_queries(request, log, raise_problems=mode == "raise")
                return response

            yield finish

    def check_queries(self, request: HttpRequest, log: QueryLog, *, raise_problems: bool) -> None:
        """Log or raise the request's budget overrun and N+1s."""
        match = getattr(request, "resolver_match", None)
        budget = view_query_budget(match.func if match else None)
        if budget is None:
            return
        for problem in find_problems(
            log, budget=budget, threshold=scale_settings.NPLUSONE_THRESHOLD
        ):
            if raise_problems:
                raise problem
            logger.warning("%s %s: %s", request.method, request.path, problem)


class DatabaseUnavailableMiddleware:
    """A view that cannot reach the database answers 503 with ``Retry-After`` and a JSON body.

    Django's ``OperationalError`` and ``InterfaceError`` (a refused or lost connection, a
    pooler that cannot log in to the server) and ``InternalError`` (a COMMIT the server could
    not confirm: PgBouncer answering it twice while PostgreSQL stops) become a 503 instead of
    a 500; Django closes the broken connection at the end of the request, so the next one
    connects again.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError | InternalError):
            return None
        logging.getLogger("drf_scale.db").warning(
            "%s %s: the database is unavailable: %s", request.method, request.path, exception
        )
        response = JsonResponse(
            {"detail": "The database is unavailable. Retry shortly."}, status=503
        )
        response["Retry-After"] = str(scale_settings.DATABASE_RETRY_AFTER)
        return response


class ChunkedBodyMiddleware:
    """A body sent with ``Transfer-Encoding: chunked`` is read like one with a Content-Length.

    Django reads no body without a Content-Length (WSGI) and DRF parses none, so a chunked
    write would succeed with empty data. This middleware buffers the body, answers 413 past
    DATA_UPLOAD_MAX_MEMORY_SIZE, and sets CONTENT_LENGTH for what follows. Put it first.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower() and not meta.get(
            "CONTENT_LENGTH"
        ):
            # WSGI: the server's input, which Django limited to 0 bytes; ASGI: the body file.
            raw = meta.get("wsgi.input") or request._stream
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            body = raw.read() if limit is None else raw.read(limit + 1)
            if limit is not None and len(body) > limit:
                return JsonResponse({"detail": "Request body too large."}, status=413)
            request._stream = io.BytesIO(body)
            meta["CONTENT_LENGTH"] = str(len(body))
        return self.get_response(request)
