"""Capturing queries: fingerprints, call sites, field paths, budgets, N+1 detection."""

import pytest
from django.db.models import Prefetch
from django.test import override_settings
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from drf_scale.planner import optimize
from drf_scale.queries import (
    NPlusOneDetected,
    QueryBudgetExceeded,
    assert_constant_queries,
    capture_queries,
    find_problems,
    fingerprint,
    query_budget,
    record_queries,
)
from tests.testapp.data import make_catalog
from tests.testapp.models import Brand, Product, Tag
from tests.testapp.serializers import ProductSerializer


def render(queryset: object) -> list:
    request = Request(APIRequestFactory().get("/"))
    return ProductSerializer(queryset, many=True, context={"request": request}).data


RENDER_LINE = render.__code__.co_firstlineno + 2


class TestFingerprint:
    @pytest.mark.parametrize(
        ("sql", "expected"),
        [
            (  # SQLite and PostgreSQL as Django sends them: %s placeholders, inlined LIMIT
                'SELECT "testapp_brand"."id", "testapp_brand"."name" FROM "testapp_brand" '
                'WHERE "testapp_brand"."id" = %s LIMIT 21',
                'SELECT "testapp_brand"."id", "testapp_brand"."name" FROM "testapp_brand" '
                'WHERE "testapp_brand"."id" = ? LIMIT ?',
            ),
            (  # a prefetch: IN lists of any length are one fingerprint
                'SELECT "testapp_review"."id" FROM "testapp_review" '
                'WHERE "testapp_review"."product_id" IN (%s, %s, %s)',
                'SELECT "testapp_review"."id" FROM "testapp_review" '
                'WHERE "testapp_review"."product_id" IN (...)',
            ),
            (  # literals inlined by hand or by a debug printer; aliases keep their digits
                'SELECT T3."id", "col1" FROM "t" U0 WHERE U0."n" IN (1, 2,3) AND x > -1.50e3',
                'SELECT T3."id", "col1" FROM "t" U0 WHERE U0."n" IN (...) AND x > ?',
            ),
            (
                "SELECT 1 FROM t WHERE name = 'O''Brien' AND b = 'x'",
                "SELECT ? FROM t WHERE name = ? AND b = ?",
            ),
            (  # PostgreSQL-native placeholders, folded whitespace
                'SELECT "a"\n  FROM "t"\tWHERE "a" = $1 AND "b" = %(b)s',
                'SELECT "a" FROM "t" WHERE "a" = ? AND "b" = ?',
            ),
            (
                'INSERT INTO "t" ("a", "b") VALUES (%s, %s), (%s, %s), (%s, %s) RETURNING "t"."id"',
                'INSERT INTO "t" ("a", "b") VALUES (...) RETURNING "t"."id"',
            ),
        ],
    )
    def test_literals_and_parameters_become_placeholders(self, sql: str, expected: str) -> None:
        assert fingerprint(sql) == expected

    @pytest.mark.django_db
    def test_queries_that_differ_by_values_share_a_fingerprint(self) -> None:
        with capture_queries() as log:
            list(Brand.objects.filter(pk__in=[1, 2, 3]))
            list(Brand.objects.filter(pk__in=[4, 5]))
            list(Brand.objects.filter(pk=1))
            list(Brand.objects.filter(pk=2))
            list(Brand.objects.filter(name="it's"))
        prints = [query.fingerprint for query in log.queries]
        assert prints[0] == prints[1]
        assert prints[2] == prints[3]
        assert len(set(prints)) == 3
        assert all(query.alias == "default" for query in log.queries)


@pytest.mark.django_db
@pytest.mark.urls("tests.testapp.urls")
class TestOrigin:
    def test_each_query_names_the_serializer_field_that_ran_it(self) -> None:
        make_catalog(4)
        thin_tags = Prefetch("tags", queryset=Tag.objects.only("id"))
        with capture_queries() as log:
            render(Product.objects.prefetch_related(thin_tags, "reviews"))
        paths = {query.field_path for query in log.queries}
        assert {
            "ProductSerializer.brand",  # the FK, loaded per row
            "ProductSerializer.tags[].name",  # a deferred column, per tag
            "ProductSerializer.reviews[].customer",  # an FK inside a list
            "ProductSerializer.warranty",  # the reverse one-to-one
            "ProductSerializer.review_count",  # a method field
        } <= paths

    def test_the_call_site_is_the_first_frame_outside_the_libraries(self) -> None:
        with capture_queries() as log:
            Brand.objects.count()
        (query,) = log.queries
        assert query.call_site.startswith("tests/test_queries.py:")
        assert query.call_site.endswith(  # the qualified name: the class, for a method
            "in TestOrigin.test_the_call_site_is_the_first_frame_outside_the_libraries"
        )
        assert query.field_path is None

    def test_recording_without_detail_skips_the_stack(self) -> None:
        with record_queries() as log:
            Brand.objects.count()
        assert (log.queries[0].call_site, log.queries[0].field_path) == (None, None)

    def test_nested_recorders_each_see_every_query(self) -> None:
        with record_queries() as outer:
            Brand.objects.count()
            with capture_queries() as inner:
                Brand.objects.count()
        assert (outer.count, inner.count) == (2, 1)
        assert inner.queries[0] is outer.queries[1]
        assert inner.queries[0].call_site is not None


@pytest.mark.django_db
@pytest.mark.urls("tests.testapp.urls")
class TestNPlusOne:
    def test_one_query_per_row_from_one_place_is_an_nplusone(self) -> None:
        make_catalog(4)
        with capture_queries() as log:
            render(Product.objects.all())
        (problem,) = find_problems(log, threshold=3)
        assert isinstance(problem, NPlusOneDetected)
        brand = next(g for g in problem.groups if 'FROM "testapp_brand"' in g.fingerprint)
        assert brand.count == 4
        assert brand.field_paths == ["ProductSerializer.brand"]
        assert brand.call_sites == [f"tests/test_queries.py:{RENDER_LINE} in render"]
        assert "rendering ProductSerializer.brand" in str(problem)

    def test_a_planned_rendering_has_none(self) -> None:
        make_catalog(4)
        with capture_queries() as log:
            render(optimize(Product.objects.all(), ProductSerializer))
        assert find_problems(log, threshold=2) == []


@pytest.mark.django_db
class TestQueryBudget:
    def test_a_block_over_budget_raises_grouped_queries(self) -> None:
        with pytest.raises(QueryBudgetExceeded) as raised, query_budget(2):
            for pk in range(3):
                Brand.objects.filter(pk=pk).first()
        message = str(raised.value)
        assert message.startswith("3 queries, over the budget of 2:\n  3 x SELECT")
        assert "at tests/test_queries.py:" in message

    def test_a_block_within_budget_yields_its_log(self) -> None:
        with query_budget(1) as log:
            Brand.objects.count()
        assert log.count == 1

    def test_an_error_in_the_block_is_not_masked(self) -> None:
        with pytest.raises(ZeroDivisionError), query_budget(0):
            Brand.objects.count()
            _ = 1 / 0

    def test_as_a_decorator_it_checks_every_call_and_names_its_budget(self) -> None:
        @query_budget(1)
        def count_twice() -> None:
            Brand.objects.count()
            Brand.objects.count()

        assert count_twice.query_budget == 1
        for _ in range(2):
            with pytest.raises(QueryBudgetExceeded):
                count_twice()

    @override_settings(DRF_SCALE={"QUERY_BUDGET": 1})
    def test_the_default_budget_is_the_setting(self) -> None:
        with pytest.raises(QueryBudgetExceeded, match="budget of 1"), query_budget():
            Brand.objects.count()
            Brand.objects.count()


@pytest.mark.django_db
@pytest.mark.urls("tests.testapp.urls")
class TestConstantQueries:
    def test_a_planned_rendering_passes_at_two_data_sizes(self) -> None:
        assert_constant_queries(
            lambda size: render(optimize(Product.objects.all(), ProductSerializer)),
            setup=lambda size: make_catalog(size - Product.objects.count()),
        )

    def test_a_growing_rendering_fails_naming_what_grew(self) -> None:
        make_catalog(10)
        with pytest.raises(AssertionError) as raised:
            assert_constant_queries(lambda size: render(Product.objects.all()[:size]), (2, 6))
        message = str(raised.value)
        assert message.startswith("Queries grew from ")
        assert 'x SELECT "testapp_warranty"' in message
        assert "rendering ProductSerializer.warranty" in message
