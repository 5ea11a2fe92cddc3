"""drf_scale.conf: every setting overridable at once, import strings imported once, one
setting_changed receiver for the caches derived from settings, and check_settings (E060 to
E063) for whatever is wrong with DRF_SCALE."""

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import ERROR, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.test import override_settings
from rest_framework.pagination import CursorPagination

import drf_scale
from drf_scale import conf
from drf_scale.breaker import guarded_cache
from drf_scale.cache.store import get_store
from drf_scale.cache.views import RepresentationCache, namespace
from drf_scale.checks import check_settings
from drf_scale.conf import DEFAULTS, IMPORT_STRINGS, scale_settings, validate
from drf_scale.counting import CountResult, CountStrategy, ExactCount, HybridCount
from drf_scale.fast import compile_read_plan
from shop.api_serializers import ProductSerializer
from tests.fastapp.serializers import GadgetSerializer
from tests.pagingapp.views import ItemPages
from tests.test_pagination import SCORES, TIMES, make_items


class SixThousand(CountStrategy):
    """A count strategy the tests name by its dotted path."""

    def count(self, queryset: QuerySet[Any]) -> CountResult:
        return CountResult(6000, estimated=True)


# Another valid value of every setting: different from its default and from the test settings.
OTHER_VALUES: dict[str, Any] = {
    "SERVER_TIMING": False,
    "QUERY_BUDGET": 12,
    "NPLUSONE_THRESHOLD": 7,
    "QUERY_CHECKS": "log",
    "UNPLANNED_FETCH": "raise",
    "PARTIAL_COMPILATION": False,
    "COUNT_STRATEGY": "drf_scale.counting.ExactCount",
    "PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "COUNT_HYBRID_THRESHOLD": 500,
    "COUNT_CACHE_TTL": 5,
    "COUNT_CACHE": "counts",
    "MAX_OFFSET": 250,
    "SERVER_MODE": "asgi",
    "WORKERS": 3,
    "AGGREGATE_CACHE": "aggregates",
    "AGGREGATE_DEBOUNCE": 0.5,
    "AGGREGATE_ON_MISS": "accept",
    "AGGREGATE_MISS_WAIT": 0.25,
    "AGGREGATE_RETRY_AFTER": 9,
    "AGGREGATE_COMPUTE_TIMEOUT": 30,
    "FAST_READS": False,
    "CACHE_URL": "redis://127.0.0.1:6379/15",
    "CACHE_ENABLED": False,
    "CACHE_VIEW_MODULES": ["shop.api_views"],
    "CACHE_TTL": 60,
    "CACHE_KEY_PREFIX": "elsewhere",
    "CACHE_VERSION": "2",
    "CACHE_LEASE_MS": 500,
    "CACHE_LEASE_WAIT": 0.5,
    "CACHE_SOCKET_TIMEOUT": 1.5,
    "CACHE_BREAKER_FAILURES": 5,
    "CACHE_BREAKER_COOLDOWN": 10.0,
    "CACHE_RENEW_INTERVAL": 0.2,
    "CACHE_S_MAXAGE": 120,
    "CACHE_STALE_WHILE_REVALIDATE": 0,
    "EDGE_KEY_HEADER": "xkey",
    "EDGE_MAX_KEYS": 16,
    "EDGE_PURGER": "drf_scale.edge.VarnishPurger",
    "EDGE_PURGER_OPTIONS": {"urls": ["http://127.0.0.1:6081"]},
    "EDGE_PURGE_TIMEOUT": 0.5,
    "EDGE_PURGE_RETRIES": 3,
    "EDGE_PURGE_COOLDOWN": 1.5,
    "EDGE_PURGE_QUEUE_SIZE": 100,
    "DATABASE_RETRY_AFTER": 4,
    "REQUIRE_IF_MATCH": True,
    "REPLICA_MAX_LAG": 0.5,
    "REPLICA_SAMPLE_MS": 5,
    "REPLICA_RETRY_AFTER": 3,
    "READ_POSITION_MAX_AGE": 60,
}
RESOLVED = {
    "COUNT_STRATEGY": ExactCount,
    "PAGINATION_CLASS": CursorPagination,
}  # what an import string reads as


def test_the_table_has_another_valid_value_for_every_setting():
    assert OTHER_VALUES.keys() == DEFAULTS.keys()
    assert RESOLVED.keys() == set(IMPORT_STRINGS)
    assert validate(OTHER_VALUES) == []
    assert validate(DEFAULTS) == []


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_an_override_takes_effect_at_once(key):
    before = getattr(scale_settings, key)  # read, so cached
    other = OTHER_VALUES[key]
    expected = RESOLVED.get(key, other)
    assert expected != before
    with override_settings(DRF_SCALE={**settings.DRF_SCALE, key: other}):
        assert getattr(scale_settings, key) == expected
        assert getattr(scale_settings, key) is getattr(scale_settings, key)
    assert getattr(scale_settings, key) == before


def test_reads_are_validated_once_per_change(monkeypatch):
    calls = []

    def counting(*args: Any, **kwargs: Any) -> list[conf.Problem]:
        calls.append(args)
        return validate(*args, **kwargs)

    monkeypatch.setattr(conf, "validate", counting)
    with override_settings(DRF_SCALE={"QUERY_BUDGET": 3}):
        for _ in range(5):
            assert scale_settings.QUERY_BUDGET == 3
            assert scale_settings.SERVER_TIMING is True
            assert scale_settings.CACHE_TTL == 3600
        assert len(calls) == 1
        assert vars(scale_settings)["QUERY_BUDGET"] == 3  # later reads are attribute lookups
    assert len(calls) == 1  # the next read validates again, not the change itself


def test_an_unknown_name_in_code_is_an_attribute_error():
    with pytest.raises(AttributeError, match="SERVER_TIMNG"):
        scale_settings.SERVER_TIMNG  # noqa: B018


# COUNT_STRATEGY: imported once, read as the class.


@pytest.mark.urls("tests.pagingapp.urls")
def test_count_strategy_override_changes_the_paginators_strategy_and_imports_once(
    db, client, monkeypatch
):
    make_items([{"rank": i, "score": SCORES[0], "created": TIMES[0]} for i in range(3)])
    assert isinstance(ItemPages().get_count_strategy(), HybridCount)  # the default
    imported = []

    def recording(path: str) -> Any:
        imported.append(path)
        return conf_import_string(path)

    conf_import_string = conf.import_string
    monkeypatch.setattr(conf, "import_string", recording)
    path = f"{__name__}.SixThousand"
    with override_settings(DRF_SCALE={**settings.DRF_SCALE, "COUNT_STRATEGY": path}):
        for _ in range(3):
            body = client.get("/item-pages/?page=1").json()
            assert (body["count"], body["count_is_estimate"]) == (6000, True)
        assert isinstance(ItemPages().get_count_strategy(), SixThousand)
        assert scale_settings.COUNT_STRATEGY is SixThousand
        assert scale_settings.COUNT_STRATEGY is scale_settings.COUNT_STRATEGY
        assert imported.count(path) == 1
    body = client.get("/item-pages/?page=1").json()
    assert (body["count"], body["count_is_estimate"]) == (3, False)


def test_an_import_string_may_be_the_class_itself():
    with override_settings(DRF_SCALE={"COUNT_STRATEGY": SixThousand}):
        assert check_settings() == []
        assert scale_settings.COUNT_STRATEGY is SixThousand


# The one receiver: caches derived from settings are cleared when they change.


def test_cache_version_changes_namespaces_and_so_cache_keys():
    name = namespace(ProductSerializer)
    field = RepresentationCache(ProductSerializer, "public").field
    assert name in field
    with override_settings(DRF_SCALE={**settings.DRF_SCALE, "CACHE_VERSION": "2"}):
        assert namespace(ProductSerializer) != name
        assert RepresentationCache(ProductSerializer, "public").field != field
    assert namespace(ProductSerializer) == name
    assert RepresentationCache(ProductSerializer, "public").field == field


def test_every_derived_cache_is_cleared_on_change():
    store, guarded = get_store(), guarded_cache("default")
    compile_read_plan(GadgetSerializer)
    with override_settings(DRF_SCALE={**settings.DRF_SCALE}):
        assert get_store() is not store
        assert guarded_cache("default") is not guarded
        assert compile_read_plan.cache_info().currsize == 0
    guarded = guarded_cache("default")
    with override_settings(CACHES={**settings.CACHES}):  # "also" settings
        assert guarded_cache("default") is not guarded
    compile_read_plan(GadgetSerializer)
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK}):
        assert compile_read_plan.cache_info().currsize == 0


def test_conf_holds_the_only_setting_changed_receiver():
    package = Path(drf_scale.__file__).parent
    connecting = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "setting_changed.connect" in path.read_text()
    )
    assert connecting == ["conf.py"]


# check_settings: every kind of bad setting, with its id; nothing for good ones.


BAD_SETTINGS = [
    ({"SERVER_TIMNG": False}, "drf_scale.E060"),
    ({"CACHE_VERISON": "2"}, "drf_scale.E060"),
    ({"SERVER_TIMING": "yes"}, "drf_scale.E061"),
    ({"QUERY_BUDGET": "5"}, "drf_scale.E061"),
    ({"QUERY_BUDGET": True}, "drf_scale.E061"),
    ({"CACHE_TTL": -1}, "drf_scale.E061"),
    ({"CACHE_URL": "http://127.0.0.1:6379/0"}, "drf_scale.E061"),
    ({"CACHE_VIEW_MODULES": "shop.api_views"}, "drf_scale.E061"),
    ({"COUNT_STRATEGY": 5}, "drf_scale.E061"),
    ({"QUERY_CHECKS": "loud"}, "drf_scale.E062"),
    ({"UNPLANNED_FETCH": "all"}, "drf_scale.E062"),
    ({"QUERY_CHECKS": False}, "drf_scale.E062"),
    ({"SERVER_MODE": "ASGI"}, "drf_scale.E062"),
    ({"AGGREGATE_ON_MISS": "wait"}, "drf_scale.E062"),
    ({"COUNT_STRATEGY": "drf_scale.counting.NoSuchCount"}, "drf_scale.E063"),
    ({"COUNT_STRATEGY": "no_such_module.Count"}, "drf_scale.E063"),
    ({"COUNT_STRATEGY": "drf_scale.counting.CountResult"}, "drf_scale.E063"),
    ({"COUNT_STRATEGY": CountResult}, "drf_scale.E063"),
]


@pytest.mark.parametrize(("bad", "check_id"), BAD_SETTINGS)
def test_the_check_reports_a_bad_setting_with_its_id(bad, check_id):
    (key,) = bad
    with override_settings(DRF_SCALE={**settings.DRF_SCALE, **bad}):
        errors = check_settings()
        assert [(e.id, e.level) for e in errors] == [(check_id, ERROR)]
        assert repr(key) in errors[0].msg
        # Registered with the others, which wait until DRF_SCALE is right instead of raising.
        found = [m.id for m in run_checks(tags=["drf_scale"]) if m.id.startswith("drf_scale.")]
        assert found == [check_id], [m.msg for m in run_checks(tags=["drf_scale"])]
        # Never silent at run time either: reading the setting raises, naming the check.
        with pytest.raises(ImproperlyConfigured, match=check_id):
            getattr(scale_settings, key if key in DEFAULTS else "SERVER_TIMING")


def test_an_unknown_key_hints_at_the_close_one():
    with override_settings(DRF_SCALE={"SERVER_TIMNG": False}):
        (error,) = check_settings()
    assert error.hint == "Did you mean 'SERVER_TIMING'?"


def test_drf_scale_must_be_a_dict():
    with override_settings(DRF_SCALE=["SERVER_TIMING"]):
        assert [e.id for e in check_settings()] == ["drf_scale.E061"]


@pytest.mark.parametrize(
    "good", [{}, dict(DEFAULTS), OTHER_VALUES, {"QUERY_BUDGET": None, "WORKERS": None}]
)
def test_the_check_reports_nothing_for_good_settings(good):
    with override_settings(DRF_SCALE=good):
        assert check_settings() == []


def test_the_check_reports_nothing_for_the_test_settings():
    assert check_settings() == []
