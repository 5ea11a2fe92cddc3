"""drf_scale.routers without a replica: WAL positions, the read position a request carries,
and where reads go when no replica is configured (tests/replicas/ has the real one)."""

from __future__ import annotations

import json

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from drf_scale.routers import (
    READ_POSITION_COOKIE,
    ReadPositionMiddleware,
    ReplicaRouter,
    format_lsn,
    parse_lsn,
)

factory = RequestFactory()


@pytest.mark.parametrize("text", ["0/0", "0/16B3748", "16/B374D848", "FFFFFFFF/FFFFFFFF"])
def test_wal_positions_read_and_print_as_postgresql_does(text):
    assert format_lsn(parse_lsn(text)) == text


def test_positions_order_as_the_wal_does():
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF") > parse_lsn("0/16B3748")


@pytest.mark.parametrize("text", ["", "nope", "0", "/1", "1/", "123456789/0", "0/x"])
def test_a_bad_position_is_a_value_error(text):
    with pytest.raises(ValueError):
        parse_lsn(text)


def seen(request) -> tuple[int, dict]:
    """The middleware's answer and the Reads the view saw."""
    captured = {}

    def view(req):
        captured["reads"] = req._drf_scale_reads
        return HttpResponse("ok")

    response = ReadPositionMiddleware(view)(request)
    return response.status_code, captured


def test_a_read_carries_the_later_of_its_header_and_cookie():
    request = factory.get("/", HTTP_X_READ_AFTER="0/200")
    request.COOKIES[READ_POSITION_COOKIE] = "0/300"
    status, captured = seen(request)
    assert status == 200
    assert captured["reads"].after == parse_lsn("0/300")
    assert captured["reads"].safe


def test_a_malformed_header_is_a_400_and_a_malformed_cookie_is_ignored():
    response = ReadPositionMiddleware(lambda r: HttpResponse())(
        factory.get("/", HTTP_X_READ_AFTER="yesterday")
    )
    assert response.status_code == 400
    assert "X-Read-After" in json.loads(response.content)["detail"]
    request = factory.post("/")
    request.COOKIES[READ_POSITION_COOKIE] = "garbage"
    status, captured = seen(request)
    assert (status, captured["reads"].after, captured["reads"].safe) == (200, None, False)


@pytest.mark.django_db
def test_without_replicas_every_read_goes_to_the_primary_and_writes_carry_no_position():
    router = ReplicaRouter()
    for method in ("get", "post"):
        request = getattr(factory, method)("/")
        chosen = {}

        def view(req, chosen=chosen):
            chosen["alias"] = router.db_for_read(None)
            return HttpResponse("ok")

        response = ReadPositionMiddleware(view)(request)
        assert chosen["alias"] == "default"
        assert "X-Read-After" not in response
    assert router.db_for_read(None) is None  # outside a request: Django's default
    assert router.allow_migrate("default", "shop") is None


class OwnRouter:
    """An application's router, which may read a replica inside atomic()."""


def replica_settings(**changes):
    from django.conf import settings

    databases = {
        "default": settings.DATABASES["default"],
        "replica_1": {**settings.DATABASES["default"], "DRF_SCALE_REPLICA_OF": "default"},
    }
    return {
        "DATABASES": databases,
        "DATABASE_ROUTERS": ["drf_scale.routers.ReplicaRouter"],
        "MIDDLEWARE": ["drf_scale.routers.ReadPositionMiddleware"],
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "ids"),
    [
        ({}, []),
        ({"DATABASE_ROUTERS": []}, ["drf_scale.E027"]),
        (
            {"DATABASE_ROUTERS": [f"{__name__}.OwnRouter", "drf_scale.routers.ReplicaRouter"]},
            ["drf_scale.E028"],
        ),
        ({"MIDDLEWARE": []}, ["drf_scale.W026"]),
    ],
)
def test_replica_settings_that_break_the_guarantee_are_checks(changes, ids):
    from django.test import override_settings

    from drf_scale.checks import check_replicas

    with override_settings(**replica_settings(**changes)):
        assert [message.id for message in check_replicas()] == ids


def test_a_replica_of_no_primary_is_a_check():
    from django.test import override_settings

    from drf_scale.checks import check_replicas

    settings = replica_settings()
    settings["DATABASES"]["replica_1"]["DRF_SCALE_REPLICA_OF"] = "nowhere"
    with override_settings(**settings):
        assert [message.id for message in check_replicas()] == ["drf_scale.E026"]
    assert ReplicaRouter().allow_migrate("default", "shop") is None


def test_threads_asking_at_once_share_one_sample(monkeypatch):
    """A replica slow to answer is sampled once, not once per waiting thread."""
    import threading
    import time

    from drf_scale.routers import Monitor, Sample

    monitor, taken = Monitor(), []

    def slow_take(alias):
        taken.append(alias)
        time.sleep(0.2)
        return Sample(None, 0.0, time.monotonic())

    monkeypatch.setattr(monitor, "_take", slow_take)
    threads = [threading.Thread(target=monitor.sample, args=("replica_1",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert taken == ["replica_1"]


def test_a_failed_read_outlives_a_sample_taken_before_it(monkeypatch):
    import threading
    import time

    from drf_scale.routers import Monitor, Sample

    monitor, started = Monitor(), threading.Event()

    def take(alias):
        started.set()
        time.sleep(0.1)
        return Sample(100, 0.0, time.monotonic())

    monkeypatch.setattr(monitor, "_take", take)
    monkeypatch.setattr(monitor, "_close", lambda alias: None)
    sampling = threading.Thread(target=monitor.sample, args=("replica_1",))
    sampling.start()
    started.wait()
    monitor.failed("replica_1")
    sampling.join()
    assert monitor.sample("replica_1").replayed is None  # skipped, not the older sample's 100


def test_only_a_replica_connection_error_runs_the_view_again():
    """An integrity or data error is the query's, not the replica's: no retry, no skip."""
    from django.db import IntegrityError, OperationalError

    from drf_scale.routers import Reads, monitor

    calls = []
    middleware = ReadPositionMiddleware(lambda r: HttpResponse())
    request = factory.get("/")
    request._drf_scale_reads = Reads(safe=True, after=None, chosen="replica_1")
    request._drf_scale_view = (lambda req: calls.append(1) or HttpResponse("again"), (), {})
    assert middleware.process_exception(request, IntegrityError("duplicate")) is None
    assert calls == [] and "replica_1" not in monitor._samples
    from unittest import mock

    with mock.patch("drf_scale.routers.connections") as connections:
        answer = middleware.process_exception(request, OperationalError("gone"))
    assert answer.content == b"again" and calls == [1]
    connections.__getitem__.return_value.close.assert_called_once()
    monitor.forget()


def test_an_object_of_another_database_reads_its_own():
    from django.contrib.auth.models import User

    router, seen = ReplicaRouter(), {}
    other = User(username="bob")
    other._state.db = "other"

    def view(req):
        seen["other"] = router.db_for_read(User, instance=other)
        seen["plain"] = router.db_for_read(User)
        return HttpResponse()

    ReadPositionMiddleware(view)(factory.get("/"))
    assert seen == {"other": None, "plain": "default"}
