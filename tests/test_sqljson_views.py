"""Views with ``render_in_database``: PostgreSQL writes the list, byte for byte what Python
writes; rows it cannot write exactly, and serializers it cannot write at all, render in
Python, the latter with the reason named (check W034, a log line)."""

from __future__ import annotations

import json
import logging
import zoneinfo

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.test import APIRequestFactory

from drf_scale.checks import _rendered_in_python
from drf_scale.renderers import ORJSONRenderer
from drf_scale.sqljson import compile_database_plan
from drf_scale.viewsets import ScaleReadOnlyModelViewSet
from shop.api_serializers import ProductSerializer
from shop.api_views import ProductPagination
from shop.models import Product, Review
from tests.factories import make_catalog, make_user

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

factory = APIRequestFactory()


class Products(ScaleReadOnlyModelViewSet):
    """/api/'s product list without the representation cache, written by PostgreSQL."""

    queryset = Product.objects.all()
    serializer_class = ProductSerializer
    pagination_class = ProductPagination
    renderer_classes = [ORJSONRenderer, BrowsableAPIRenderer]
    cache_scope = None
    render_in_database = True


class InPython(Products):
    render_in_database = False


class WithMethod(serializers.ModelSerializer):
    initial = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "name", "initial"]

    def get_initial(self, product: Product) -> str:
        return product.name[:1]


class MethodProducts(Products):
    serializer_class = WithMethod


class RealShapes(serializers.ModelSerializer):
    """Shapes of wger's and paperless-ngx's serializers: the primary keys of a many-to-many,
    choices given as the TextChoices class, a primary key read off the foreign key's column."""

    tags = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    status = serializers.ChoiceField(choices=Product.Status)
    brand_id = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Product
        fields = ["id", "tags", "status", "brand_id"]


def listed(view_class: type, query: str = "", **headers: str) -> tuple[bytes, int]:
    """The list's body and how many queries it took."""
    request = factory.get(f"/products/{query}", **headers)
    with CaptureQueriesContext(connection) as queries:
        response = view_class.as_view({"get": "list"})(request)
        response.render()
    assert response.status_code == 200, response.content
    return response.content, len(queries)


@pytest.fixture
def catalog():
    return make_catalog(products=15)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns"])
@pytest.mark.parametrize("query", ["", "?page_size=4", "?ordering=-price&page_size=3"])
def test_the_database_writes_the_bytes_python_writes(catalog, zone, query):
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        in_database, queries = listed(Products, query)
        in_python, python_queries = listed(InPython, query)
    assert in_database == in_python
    # The page's rows with their tags in one query; Python reads the tags in a second.
    assert (queries, python_queries) == (1, 2)


def test_the_next_page_of_a_list_written_by_the_database(catalog):
    first, _ = listed(Products, "?page_size=4")
    link = json.loads(first)["next"]
    assert ProductPagination.cursor_query_param in link
    query = "?" + link.split("?", 1)[1]
    assert listed(Products, query)[0] == listed(InPython, query)[0]


def test_a_row_the_database_cannot_write_exactly_renders_in_python(catalog):
    """An average of 3.125: PostgreSQL rounds the tie up, Python's round() on the float
    down (3.12). RatingField's json_sql leaves that row to Python, in one more query."""
    product = catalog["products"][0]
    product.reviews.all().delete()
    users = [make_user(f"rater{i}") for i in range(8)]
    for user, rating in zip(users, [5, 5, 5, 2, 2, 2, 2, 2], strict=True):
        Review.objects.create(product=product, user=user, rating=rating, title="t")
    in_database, queries = listed(Products)
    in_python, _ = listed(InPython)
    assert b'"rating_avg":3.12' in in_python
    assert in_database == in_python
    assert queries == 3  # the page, then the row Python renders and its tags


def test_a_browsable_or_indented_list_carries_the_same_data(catalog):
    indented, _ = listed(Products, HTTP_ACCEPT="application/json; indent=2")
    assert indented == listed(InPython, HTTP_ACCEPT="application/json; indent=2")[0]
    assert b"\n  " in indented
    page, _ = listed(Products, HTTP_ACCEPT="text/html")
    assert b"SKU-0000" in page


def test_a_serializer_the_database_cannot_write_renders_in_python_and_says_why(catalog, caplog):
    plan = compile_database_plan(WithMethod)
    assert not plan.compiled
    assert plan.fallback_reasons == (
        "WithMethod.initial: SerializerMethodField — a method field runs Python per object",
    )
    [warning] = _rendered_in_python(MethodProducts)
    assert warning.id == "drf_scale.W034"
    assert "WithMethod.initial" in warning.msg
    with caplog.at_level(logging.WARNING, logger="drf_scale.mixins"):
        body, _ = listed(MethodProducts)
    assert b'"initial":"P"' in body
    assert "renders MethodProducts's lists in Python" in caplog.text
    assert _rendered_in_python(Products) == []


def test_real_shapes_on_a_grouped_queryset(catalog):
    """wger filters on an aggregate (Django 6 resolved the to-many subquery without an
    output field, then grouped by it: both failed)."""
    plan = compile_database_plan(RealShapes)
    assert plan.compiled, plan.fallback_reasons
    queryset = Product.objects.annotate(tagged=Count("tags")).filter(tagged__gt=1).order_by("pk")
    with CaptureQueriesContext(connection) as queries:
        written = plan.execute(queryset)
    assert written == ORJSONRenderer().render(RealShapes(queryset, many=True).data)
    assert len(queries) == 1
    assert json.loads(written)[0]["tags"] == [catalog["tags"][0].pk, catalog["tags"][1].pk]


def test_a_union_renders_in_python(catalog):
    plan = compile_database_plan(RealShapes)
    cheap, dear = Product.objects.filter(price__lt=12), Product.objects.filter(price__gt=20)
    union = cheap.union(dear).order_by("pk")
    assert plan.unusable(union) == "the queryset is a union, which takes no annotation"
    assert plan.execute(union) == ORJSONRenderer().render(RealShapes(union, many=True).data)
