"""``manage.py scale_audit``: its verdicts, its JSON and its exit code."""

import io
import json
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from drf_scale.fast import compile_read_plan
from drf_scale.management.commands.scale_audit import fit_sizes, grows_with_rows
from tests.checks_urls import ShoutingSerializer
from tests.testapp.data import make_catalog
from tests.testapp.models import Brand, Category, Product

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.testapp.urls")]


def audit(*args: str) -> tuple[Any, int]:
    """The command's output (parsed when --json) and its exit code."""
    out = io.StringIO()
    try:
        call_command("scale_audit", *args, stdout=out)
        code = 0
    except CommandError as error:
        code = error.returncode
    text = out.getvalue()
    return (json.loads(text) if "--json" in args else text), code


@pytest.fixture(autouse=True)
def catalog() -> None:
    make_catalog(12)


def by_name(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {report["name"]: report for report in reports}


def test_a_clean_prefix_passes() -> None:
    reports, code = audit("--prefix", "/api/", "--json")
    assert code == 0
    routes = by_name(reports)
    assert sorted(routes) == ["brand-detail", "brand-list", "product-detail", "product-list"]
    assert {report["verdict"] for report in reports} == {"ok"}
    assert routes["product-list"]["sizes"] == [1, 5, 12]  # 20 capped at the twelve products
    assert routes["product-list"]["rows"] == [1, 5, 12]
    assert routes["product-list"]["queries"] == [4, 4, 4]
    assert routes["product-detail"]["route"] == f"/api/products/{Product.objects.first().pk}/"
    assert routes["product-detail"]["queries"] == [4]


def test_nplusones_fail_with_fingerprint_and_field_path() -> None:
    reports, code = audit("--prefix", "/naive/", "--json")
    assert code == 1
    listed = by_name(reports)["naive-product-list"]
    assert listed["verdict"] == "N+1, over budget"
    brand = next(f for f in listed["findings"] if 'FROM "testapp_brand"' in f["detail"])
    assert brand["detail"].startswith("1 -> 5 -> 12 x SELECT")  # one per row: 1, 5, 12 rows
    assert brand["field_paths"] == ["ProductSerializer.brand"]
    assert brand["call_sites"] == []  # DRF's code ran it, inside the request
    assert listed["queries"][0] < listed["queries"][1] < listed["queries"][2]


@override_settings(DRF_SCALE={**settings.DRF_SCALE, "UNPLANNED_FETCH": "one"})  # Django 6.1
def test_budgets_and_plan_gaps_are_findings() -> None:
    reports, code = audit("--prefix", "/checks/", "--json")
    assert code == 1
    routes = by_name(reports)
    assert routes["category-list"]["verdict"] == "over budget"
    assert routes["category-list"]["budget"] == 2
    opaque = routes["opaque-product-list"]
    assert opaque["verdict"] == "N+1, over budget, plan incomplete"
    gap = next(f for f in opaque["findings"] if f["verdict"] == "plan incomplete")
    assert gap["field_paths"] == [
        "OpaqueProductSerializer.shouting_name",
        "OpaqueProductSerializer.brand_country",
    ]
    assert "product-names" not in routes  # a function view has no list or retrieve action


def test_authenticated_routes_need_a_user() -> None:
    get_user_model().objects.create_user("auditor", password="x")
    reports, code = audit("--prefix", "/private/", "--json")
    assert code == 1
    assert {report["verdict"] for report in reports} == {"error"}
    assert reports[0]["findings"][0]["detail"] == "HTTP 401"

    reports, code = audit("--prefix", "/private/", "--json", "--user", "auditor")
    assert code == 0
    assert {report["verdict"] for report in reports} == {"ok"}


def test_an_unknown_user_is_an_error() -> None:
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("scale_audit", "--user", "nobody")


def test_routes_without_rows_have_no_data() -> None:
    Brand.objects.all().delete()
    reports, code = audit("--prefix", "/api/brands/", "--json")
    assert code == 0
    assert {report["verdict"] for report in reports} == {"no data"}


def test_the_table_lists_routes_and_findings() -> None:
    table, code = audit("--prefix", "/naive/", "--sizes", "2", "5", "8")
    assert code == 1
    lines = table.splitlines()
    assert lines[0].split() == ["route", "action", "rows", "queries", "budget", "verdict"]
    assert lines[1].startswith("/naive/products/ ")
    assert " 2 / 5 / 8 " in lines[1]
    assert lines[1].endswith("N+1, over budget")
    assert "    N+1: 2 -> 5 -> 8 x SELECT" in table
    assert "      rendering ProductSerializer.brand" in table
    assert "queried by ProductSerializer.get_review_count" in table


def test_fewer_than_three_sizes_are_refused() -> None:
    with pytest.raises(CommandError, match="three different page sizes"):
        call_command("scale_audit", "--sizes", "1", "20")


# Precision: a query is an N+1 when it grows with the rows, over three pages or more.


def audited(name: str, *args: str) -> tuple[dict[str, Any], int]:
    with override_settings(ROOT_URLCONF="tests.audit_urls"):
        reports, code = audit("--prefix", f"/{name}/", "--json", *args)
    return by_name(reports)[f"{name}-list"], code


@pytest.fixture
def categories() -> None:
    """Ten more categories under the leaf: thirteen, the first (the root) without a parent."""
    leaf = Category.objects.get(name="leaf")
    Category.objects.bulk_create(Category(name=f"c{i}", parent=leaf) for i in range(10))


@pytest.mark.usefixtures("categories")
def test_a_query_per_row_with_a_relation_is_an_nplusone_with_its_path() -> None:
    report, code = audited("grows")
    assert code == 1
    assert report["verdict"] == "N+1"
    assert report["rows"] == [1, 5, 13]
    (finding,) = report["findings"]
    assert finding["detail"].startswith('0 -> 4 -> 12 x SELECT "testapp_category"')
    assert finding["field_paths"] == ["ParentNameSerializer.parent_name"]


@pytest.mark.usefixtures("categories")
def test_a_prefetch_that_appears_with_the_first_parent_is_a_fixed_cost() -> None:
    report, code = audited("prefetched")
    assert code == 0
    assert report["verdict"] == "ok"
    (cost,) = report["fixed_costs"]
    assert cost["verdict"] == "fixed cost"
    assert cost["detail"].startswith('0 -> 1 -> 1 x SELECT "testapp_category"')


def test_a_query_once_per_request_is_a_fixed_cost() -> None:
    report, code = audited("config")
    assert code == 0
    assert report["verdict"] == "ok"
    assert report["rows"] == [1, 5, 12]
    (cost,) = report["fixed_costs"]
    assert cost["detail"].startswith('0 -> 1 -> 1 x SELECT "testapp_brand"."country"')
    assert cost["methods"] == ["ConfiguredSerializer.get_currency"]


def test_sizes_are_fitted_to_the_rows_there_are() -> None:
    report, _ = audited("grows")  # three categories: root, middle, leaf
    assert (report["sizes"], report["rows"]) == ([1, 2, 3], [1, 2, 3])
    assert report["findings"][0]["detail"].startswith("0 -> 1 -> 2 x SELECT")  # still grows


def test_an_override_that_requeries_past_the_plan_is_named() -> None:
    report, code = audited("overridden")
    assert code == 1
    (finding,) = [f for f in report["findings"] if f["verdict"] == "N+1"]
    assert finding["detail"].startswith('1 -> 5 -> 12 x SELECT "testapp_brand"')
    assert finding["methods"] == ["RequeryingSerializer.to_representation"]
    (site,) = finding["call_sites"]
    assert site.startswith("tests/audit_urls.py:")
    assert site.endswith(" in RequeryingSerializer.to_representation")

    with override_settings(ROOT_URLCONF="tests.audit_urls"):
        table, _ = audit("--prefix", "/overridden/")
    assert "      queried by RequeryingSerializer.to_representation" in table


def test_a_slow_path_lists_every_reason() -> None:
    reasons = list(compile_read_plan(ShoutingSerializer).fallback_reasons)
    # The wording is fast.py's; every field that does not compile has one.
    assert [reason.split(":")[0] for reason in reasons] == [
        "ShoutingSerializer.shout",
        "ShoutingSerializer.whisper",
    ]
    report, code = audited("falling")
    assert code == 1
    (slow,) = [f for f in report["findings"] if f["verdict"] == "slow path"]
    assert slow["detail"] == "ShoutingSerializer renders through DRF, not its compiled plan"
    assert slow["reasons"] == reasons
    with override_settings(ROOT_URLCONF="tests.audit_urls"):
        table, _ = audit("--prefix", "/falling/")
    for reason in reasons:
        assert f"      because {reason}" in table


@pytest.mark.parametrize(
    ("counts", "grows"),
    [
        ([1, 5, 20], True),
        ([0, 3, 15], True),  # rows without the relation run nothing
        ([0, 0, 12], True),  # the first five rows without it
        ([0, 1, 1], False),  # present once the page has a row that needs it
        ([0, 0, 1], False),
        ([1, 1, 1], False),
        ([3, 3, 3], False),  # repeated, but not with the rows
        ([2, 1, 2], False),
        ([1, 2], False),
        ([1, 12], True),
    ],
)
def test_growth_with_the_rows(counts: list[int], grows: bool) -> None:
    assert grows_with_rows(counts) is grows


@pytest.mark.parametrize(
    ("sizes", "rows", "fitted"),
    [
        ((1, 5, 20), 300, [1, 5, 20]),
        ((1, 5, 20), 12, [1, 5, 12]),
        ((1, 5, 20), 3, [1, 2, 3]),
        ((1, 5, 20), 2, [1, 2]),
        ((1, 5, 20), 1, [1]),
    ],
)
def test_fit_sizes(sizes: tuple[int, ...], rows: int, fitted: list[int]) -> None:
    assert fit_sizes(sizes, rows) == fitted
