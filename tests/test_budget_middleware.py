"""The middleware's per-request budget and N+1 checks, in each QUERY_CHECKS mode."""

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from pytest_django.fixtures import Settings

from drf_scale import queries
from drf_scale.conf import query_checks_mode
from drf_scale.queries import NPlusOneDetected, QueryBudgetExceeded
from tests.testapp.data import make_catalog

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.testapp.urls")]

Configure = Callable[..., None]


@pytest.fixture
def configure(settings: Settings) -> Configure:
    def set_scale(**values: Any) -> None:
        settings.DRF_SCALE = values

    return set_scale


@pytest.fixture
def client() -> Client:
    make_catalog(4)
    return Client()


class TestRaise:
    @pytest.fixture(autouse=True)
    def raising(self, configure: Configure) -> None:
        configure(QUERY_CHECKS="raise")

    def test_an_nplusone_raises_with_its_field_path(self, client: Client) -> None:
        with pytest.raises(NPlusOneDetected, match=r"rendering ProductSerializer\.brand"):
            client.get("/naive/products/")

    def test_a_planned_view_within_its_budget_passes(self, client: Client) -> None:
        response = client.get("/api/products/")
        assert response.status_code == 200
        assert response.timing.queries == 4

    def test_a_view_class_budget_applies(self, client: Client) -> None:
        with pytest.raises(QueryBudgetExceeded, match="3 queries, over the budget of 2"):
            client.get("/checks/categories/")

    def test_a_view_budget_can_be_above_the_default(
        self, client: Client, configure: Configure
    ) -> None:
        configure(QUERY_CHECKS="raise", QUERY_BUDGET=4)
        response = client.get("/api/brands/")
        assert response.timing.queries == 5
        assert response.status_code == 200

    def test_a_view_function_budget_applies(self, client: Client) -> None:
        with pytest.raises(QueryBudgetExceeded, match="budget of 1"):
            client.get("/checks/names/")

    def test_repeats_below_the_threshold_are_not_an_nplusone(
        self, client: Client, configure: Configure
    ) -> None:
        configure(QUERY_CHECKS="raise", NPLUSONE_THRESHOLD=9)
        # Four products: at most eight repeats (tags, read by two fields), under nine.
        with pytest.raises(QueryBudgetExceeded):
            client.get("/naive/products/")


def test_log_mode_reports_and_serves_the_response(
    client: Client, configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    configure(QUERY_CHECKS="log")
    with caplog.at_level(logging.WARNING, logger="drf_scale.queries"):
        response = client.get("/naive/products/")
    assert response.status_code == 200
    nplusone, budget = (record.getMessage() for record in caplog.records)
    assert nplusone.startswith("GET /naive/products/: N+1 queries")
    assert "rendering ProductSerializer.brand" in nplusone
    assert "over the budget of 5" in budget


def test_off_mode_records_counts_only(
    client: Client,
    configure: Configure,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_stack_walks(frame: object) -> None:
        raise AssertionError("the stack was walked")

    configure(QUERY_CHECKS="off")
    monkeypatch.setattr(queries, "_origin", no_stack_walks)
    response = client.get("/naive/products/")
    assert response.status_code == 200
    assert response.timing.queries > 5
    assert "Server-Timing" in response.headers
    assert caplog.records == []


@pytest.mark.parametrize(
    ("mode", "debug", "expected"),
    [(None, True, "log"), (None, False, "off"), ("raise", False, "raise"), ("off", True, "off")],
)
def test_the_mode_defaults_to_log_under_debug(
    settings: Settings, mode: str | None, debug: bool, expected: str
) -> None:
    settings.DRF_SCALE = {"QUERY_CHECKS": mode}
    settings.DEBUG = debug
    assert query_checks_mode() == expected


def test_an_unknown_mode_is_an_error(configure: Configure) -> None:
    configure(QUERY_CHECKS="loud")
    with pytest.raises(ImproperlyConfigured, match=r"QUERY_CHECKS.*drf_scale\.E062"):
        query_checks_mode()
