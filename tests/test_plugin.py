"""The pytest plugin: its fixtures load through the entry point and fail when they should."""

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

INNER_TESTS = """
import pytest

from tests.testapp.models import Brand, Category, Product
from tests.testapp.data import make_catalog

pytestmark = pytest.mark.django_db


def test_within_budget(query_budget):
    with query_budget(1):
        Brand.objects.count()


def test_over_budget(query_budget):
    with query_budget(1):
        Brand.objects.count()
        Category.objects.count()


def test_constant(assert_constant_queries):
    assert_constant_queries(
        lambda size: [p.brand.name for p in Product.objects.select_related("brand")],
        setup=lambda size: make_catalog(size - Product.objects.count()),
    )


def test_growing(assert_constant_queries):
    assert_constant_queries(
        lambda size: [p.brand.name for p in Product.objects.all()],
        setup=lambda size: make_catalog(size - Product.objects.count()),
    )
"""


def test_fixtures_pass_and_fail_like_assertions(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "example")]))
    monkeypatch.delenv("DATABASE_URL", raising=False)  # an in-memory SQLite of its own
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_subprocess("--ds=tests.settings", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*QueryBudgetExceeded: 2 queries, over the budget of 1:*",
            "*Queries grew from 3 at size 2 to 11 at size 10:",
            '*2 -> 10 x SELECT "testapp_brand"*',
        ]
    )
