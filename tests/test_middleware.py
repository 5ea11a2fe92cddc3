"""ServerTimingMiddleware under WSGI and ASGI, with its own tiny URLconf."""

import re

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse
from django.test import AsyncClient, Client
from django.urls import path

from drf_scale.middleware import RequestTiming


def three_queries(request):
    for i in range(3):
        list(Group.objects.filter(name=f"g{i}"))
    return JsonResponse({"ok": True})


three_queries.query_budget = None  # the same query thrice on purpose: not checked


urlpatterns = [path("three/", three_queries)]
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
