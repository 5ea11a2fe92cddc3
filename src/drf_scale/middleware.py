"""Per-request query counts and timings, reported in a Server-Timing header."""

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse

from drf_scale.conf import scale_settings
from drf_scale.queries import record_queries


@dataclass(frozen=True, slots=True)
class RequestTiming:
    """What one request cost; set on the response as ``response.timing``."""

    queries: int
    db_ms: float
    app_ms: float

    def header(self) -> str:
        return f'db;dur={self.db_ms:.2f};desc="{self.queries} queries", app;dur={self.app_ms:.2f}'


class ServerTimingMiddleware:
    """Count the SQL queries of each request and add a Server-Timing header.

    ``app`` is the time spent outside the database. Tests read the figures of a
    response from ``response.timing``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        with record_queries() as log:
            response = self.get_response(request)
        db_s = log.duration
        timing = RequestTiming(
            queries=log.count,
            db_ms=db_s * 1000,
            app_ms=(time.perf_counter() - start - db_s) * 1000,
        )
        response.timing = timing  # type: ignore[attr-defined]
        if scale_settings.SERVER_TIMING:
            response.headers["Server-Timing"] = timing.header()
        return response
