"""ServerTimingMiddleware under WSGI and ASGI, with its own tiny URLconf."""

import json
import logging
import re

import pytest
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler
from django.db import InterfaceError, InternalError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.test import AsyncClient, Client
from django.urls import path

from drf_scale.middleware import (
    DatabaseUnavailableMiddleware,
    RequestTiming,
    ServerTimingMiddleware,
)


def three_queries(request):
    for i in range(3):
        list(Group.objects.filter(name=f"g{i}"))
    return JsonResponse({"ok": True})


three_queries.query_budget = None  # the same query thrice on purpose: not checked


async def three_queries_async(request):
    """An async view: two queries in sync_to_async's thread, one on the async ORM."""
    await sync_to_async(lambda: [list(Group.objects.filter(name=f"g{i}")) for i in range(2)])()
    [group async for group in Group.objects.filter(name="g2")]
    return JsonResponse({"ok": True})


three_queries_async.query_budget = None


urlpatterns = [path("three/", three_queries), path("three-async/", three_queries_async)]
HEADER = re.compile(r'^db;dur=\d+\.\d{2};desc="(\d+) queries", app;dur=\d+\.\d{2}$')

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def test_counts_queries_under_wsgi():
    response = Client().get("/three/")
    assert HEADER.match(response.headers["Server-Timing"]).group(1) == "3"
    assert response.timing.queries == 3
    assert response.timing.db_ms >= 0 and response.timing.app_ms > 0


async def test_counts_queries_under_asgi():
    response = await AsyncClient().get("/three/")
    assert HEADER.match(response.headers["Server-Timing"]).group(1) == "3"
    assert response.timing.queries == 3


def test_requests_do_not_share_counts():
    client = Client()
    assert client.get("/three/").timing.queries == 3
    assert client.get("/three/").timing.queries == 3


def test_header_can_be_turned_off(settings):
    settings.DRF_SCALE = {"SERVER_TIMING": False}
    response = Client().get("/three/")
    assert "Server-Timing" not in response.headers
    assert response.timing.queries == 3


def test_unknown_setting_is_an_error(settings):
    settings.DRF_SCALE = {"SERVER_TIMNG": False}
    with pytest.raises(ImproperlyConfigured, match=r"'SERVER_TIMNG'.*drf_scale\.E060"):
        Client().get("/three/")


def test_header_format():
    assert RequestTiming(queries=2, db_ms=1.5, app_ms=3.25).header() == (
        'db;dur=1.50;desc="2 queries", app;dur=3.25'
    )


# Async-capable: no thread for it in an async stack.

ONLY_TIMING = ["drf_scale.middleware.ServerTimingMiddleware"]


def test_is_a_coroutine_function_around_an_async_handler():
    async def async_view(request):
        return JsonResponse({})

    assert ServerTimingMiddleware.sync_capable and ServerTimingMiddleware.async_capable
    assert iscoroutinefunction(ServerTimingMiddleware(async_view))
    assert not iscoroutinefunction(ServerTimingMiddleware(three_queries))


def adaptations(settings, caplog, middleware: list[str]) -> list[str]:
    """What Django's ASGI handler adapts (sync to async or back) to build ``middleware``."""
    settings.DEBUG, settings.MIDDLEWARE = True, middleware  # DEBUG: the handler logs them
    with caplog.at_level(logging.DEBUG, logger="django.request"):
        ASGIHandler()
    return [r.getMessage() for r in caplog.records if "adapted" in r.getMessage()]


def test_django_does_not_adapt_it_in_an_async_stack(settings, caplog):
    assert adaptations(settings, caplog, ONLY_TIMING) == []
    # The control: a sync-only middleware gets the async view handler adapted to sync.
    sync_only = "drf_scale.middleware.DatabaseUnavailableMiddleware"
    assert adaptations(settings, caplog, [sync_only]) == [
        f"Asynchronous handler adapted for middleware {sync_only}."
    ]


@pytest.mark.parametrize("middleware", [ONLY_TIMING, None], ids=["async-stack", "test-stack"])
async def test_counts_the_queries_of_an_async_view(settings, middleware):
    """In the async stack (the middleware's acall) and in the tests' stack (sync-only
    middleware after it: Django runs it sync), queries in sync_to_async's thread count."""
    if middleware is not None:
        settings.MIDDLEWARE = middleware
    first = await AsyncClient().get("/three-async/")
    second = await AsyncClient().get("/three-async/")
    assert HEADER.match(first.headers["Server-Timing"]).group(1) == "3"
    assert (first.timing.queries, second.timing.queries) == (3, 3)


async def test_async_stack_times_a_sync_view(settings):
    settings.MIDDLEWARE = ONLY_TIMING
    response = await AsyncClient().get("/three/")
    assert response.timing.queries == 3


@pytest.mark.parametrize("error", [OperationalError, InterfaceError, InternalError])
def test_a_database_fault_is_a_503_with_retry_after(rf, error):
    """InternalError included: PgBouncer answered a COMMIT twice while PostgreSQL stopped
    (psycopg: "received 2 results from command 'COMMIT'"); the write's outcome is unknown."""
    middleware = DatabaseUnavailableMiddleware(lambda request: HttpResponse())
    response = middleware.process_exception(rf.patch("/api/products/1/"), error("gone"))
    assert response is not None
    assert (response.status_code, response["Retry-After"]) == (503, "1")
    assert json.loads(response.content) == {"detail": "The database is unavailable. Retry shortly."}
    assert middleware.process_exception(rf.get("/"), ValueError("a bug")) is None
