"""A view's own Prefetch with a queryset (a filter) on a relation the compiled plan fetches
itself: DRF renders what the Prefetch selects, so the plan steps aside for that queryset."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.models import Prefetch
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers, viewsets
from rest_framework.test import APIRequestFactory

from drf_scale.fast import compile_read_plan
from drf_scale.planner import requires
from drf_scale.viewsets import ScaleReadOnlyModelViewSet
from tests.testapp.data import make_catalog
from tests.testapp.models import Product, Review
from tests.testapp.serializers import ReviewSerializer

pytestmark = pytest.mark.django_db


class RatedProductSerializer(serializers.ModelSerializer):
    reviews = ReviewSerializer(many=True, read_only=True)  # their customers joined

    class Meta:
        model = Product
        fields = ["id", "name", "reviews"]


def good_reviews():
    return Prefetch("reviews", queryset=Review.objects.filter(rating__gte=3))


class GoodReviews:
    def get_queryset(self):
        return super().get_queryset().prefetch_related(good_reviews())  # type: ignore[misc]


def view(base):
    attrs = {
        "queryset": Product.objects.order_by("id"),
        "serializer_class": RatedProductSerializer,
        "pagination_class": None,
    }
    return type("View", (GoodReviews, base), attrs)


def test_the_plan_steps_aside_for_a_filtering_prefetch_and_renders_drfs_json():
    make_catalog(6)
    plan = compile_read_plan(RatedProductSerializer)
    assert plan.compiled
    filtered = Product.objects.prefetch_related(good_reviews()).order_by("id")
    assert not plan.serves(filtered)
    assert plan.serves(Product.objects.prefetch_related("reviews").order_by("id"))
    to_attr = Prefetch("reviews", queryset=Review.objects.filter(rating__gte=3), to_attr="good")
    assert plan.serves(Product.objects.prefetch_related(to_attr))  # DRF reads reviews.all()
    expected = RatedProductSerializer(filtered.all(), many=True).data
    assert plan.execute(filtered) == expected
    assert any(not product["reviews"] for product in expected)  # the filter shows

    factory = APIRequestFactory()
    pk = Product.objects.order_by("id").values_list("pk", flat=True)[0]
    for action, kwargs in (("list", {}), ("retrieve", {"pk": pk})):
        bodies = []
        for base in (viewsets.ReadOnlyModelViewSet, ScaleReadOnlyModelViewSet):
            response = view(base).as_view({"get": action})(factory.get("/p/"), **kwargs)
            response.render()
            assert response.status_code == 200, response.content
            bodies.append(json.loads(response.content))
        assert bodies[1] == bodies[0]


@pytest.mark.parametrize("count", [3, 9])
def test_the_drf_path_it_leaves_to_is_planned(count):
    """Where the plan steps aside, the view's queryset is planned for DRF's path: the
    reviews' customers come in the reviews' query, however many products (paperless-ngx's
    workflows: 33 and 49 queries for 5 and 20 rows without it)."""
    make_catalog(count)
    attrs = {
        "queryset": Product.objects.order_by("id").prefetch_related(good_reviews()),
        "serializer_class": RatedProductSerializer,
        "pagination_class": None,
    }
    view_class = type("View", (ScaleReadOnlyModelViewSet,), attrs)
    with CaptureQueriesContext(connection) as queries:
        response = view_class.as_view({"get": "list"})(APIRequestFactory().get("/p/"))
        response.render()
    assert response.status_code == 200
    assert len(queries) == 2  # the products; their good reviews with the customers joined


class TaggedProductSerializer(serializers.ModelSerializer):
    """Partly compiled (``shout`` needs the instance), its tags a compiled to-many."""

    tags = serializers.SlugRelatedField(many=True, slug_field="name", read_only=True)
    shout = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "name", "tags", "shout"]

    def get_shout(self, product: Product) -> str:
        return product.name.upper()


@pytest.mark.parametrize("count", [3, 9])
def test_a_relation_the_view_prefetches_is_read_from_its_prefetch(count):
    """paperless-ngx's share link bundles, NetBox's port templates: the view's queryset
    prefetches the relation a partial plan compiles; the plan reads what was prefetched onto
    the page's instances (as DRF renders it) instead of querying it again."""
    make_catalog(count)
    plan = compile_read_plan(TaggedProductSerializer)
    assert plan.pages_instances and "tags" in plan.compiled_fields
    queryset = Product.objects.order_by("id").prefetch_related("tags")
    expected = TaggedProductSerializer(queryset.all(), many=True).data
    with CaptureQueriesContext(connection) as queries:
        assert plan.execute(queryset.all()) == expected
    assert len(queries) == 2  # the products, their tags: DRF's
    with CaptureQueriesContext(connection) as queries:
        assert plan.execute(Product.objects.order_by("id")) == expected
    assert len(queries) == 2  # no prefetch: the plan's own query of the tags


class RatingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Review
        fields = ["id", "rating"]


class Shout(serializers.CharField):
    def to_representation(self, value):
        return str(value).upper()


@requires(prefetch=[good_reviews()])
class GoodReviewsProductSerializer(serializers.ModelSerializer):
    """Its plan's reviews are filtered by the declared Prefetch; ``shout`` pages instances."""

    reviews = RatingSerializer(many=True, read_only=True)
    shout = Shout(source="name")

    class Meta:
        model = Product
        fields = ["id", "reviews", "shout"]


def test_a_plain_view_prefetch_is_not_read_for_a_relation_the_plan_filters():
    """The view prefetches every review; the plan's own are the good ones (its declared
    Prefetch): the page's prefetch cache is not what the plan renders, so it queries."""
    make_catalog(8)
    plan = compile_read_plan(GoodReviewsProductSerializer).paging_instances()
    assert plan.pages_instances and "reviews" in plan.compiled_fields
    bare = plan.execute(Product.objects.order_by("id"))
    assert plan.execute(Product.objects.order_by("id").prefetch_related("reviews")) == bare
    assert any(len(product["reviews"]) < 3 for product in bare)  # the filter shows
