"""``manage.py scale_audit``: its verdicts, its JSON and its exit code."""

import io
import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.testapp.data import make_catalog
from tests.testapp.models import Brand, Product

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
    assert routes["product-list"]["sizes"] == [1, 20]
    assert routes["product-list"]["queries"] == [4, 4]
    assert routes["product-detail"]["route"] == f"/api/products/{Product.objects.first().pk}/"
    assert routes["product-detail"]["queries"] == [4]


def test_nplusones_fail_with_fingerprint_and_field_path() -> None:
    reports, code = audit("--prefix", "/naive/", "--json")
    assert code == 1
    listed = by_name(reports)["naive-product-list"]
    assert listed["verdict"] == "N+1, over budget"
    brand = next(f for f in listed["findings"] if 'FROM "testapp_brand"' in f["detail"])
    assert brand["detail"].startswith("1 -> 12 x SELECT")  # twelve rows on the larger page
    assert brand["field_paths"] == ["ProductSerializer.brand"]
    assert listed["queries"][0] < listed["queries"][1]


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
    table, code = audit("--prefix", "/naive/", "--sizes", "2", "5")
    assert code == 1
    lines = table.splitlines()
    assert lines[0].split() == ["route", "action", "queries", "budget", "verdict"]
    assert lines[1].startswith("/naive/products/ ")
    assert lines[1].endswith("N+1, over budget")
    assert "    N+1: 2 -> 5 x SELECT" in table
    assert "      rendering ProductSerializer.brand" in table
