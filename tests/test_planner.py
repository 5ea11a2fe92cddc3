"""The planner: optimized output equals plain DRF output, in a fixed number of queries."""

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.db.models import Count, Prefetch, QuerySet
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from drf_scale.checks import check_query_plans
from drf_scale.planner import QueryPlan, optimize, plan_for, requires
from drf_scale.queries import record_queries
from tests.testapp import serializers as s
from tests.testapp.data import make_catalog
from tests.testapp.models import Brand, Category, Product, Review, Tag, Warranty
from tests.testapp.views import OpaqueProductViewSet

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.testapp.urls")]

SIZES = (2, 10)


def render(serializer_class: type[serializers.BaseSerializer], queryset: QuerySet) -> list:
    request = Request(APIRequestFactory().get("/"))
    return serializer_class(queryset, many=True, context={"request": request}).data


def lookup(plan: QueryPlan, prefetch_to: str) -> Prefetch:
    return next(
        p for p in plan.prefetch if isinstance(p, Prefetch) and p.prefetch_to == prefetch_to
    )


def counted(function: Callable[[], Any]) -> tuple[Any, int]:
    with record_queries() as log:
        result = function()
    return result, log.count


# (serializer, plain DRF queryset, queries when optimized)
CASES = [
    (s.ProductSerializer, Product.objects.all, 3),
    (s.ProductDetailSerializer, lambda: Product.objects.prefetch_related(s.LATEST_REVIEWS), 4),
    (s.ProductWriteSerializer, lambda: Product.objects.prefetch_related(s.LATEST_REVIEWS), 3),
    (s.BrandCatalogSerializer, Brand.objects.all, 4),
    (s.CategoryTreeSerializer, Category.objects.all, 2),
    (s.WarrantyProductSerializer, Warranty.objects.all, 3),
    (s.ReviewProductSerializer, Review.objects.all, 2),
    (
        s.AnnotatedProductSerializer,
        lambda: Product.objects.annotate(review_total=Count("reviews")).order_by("id"),
        1,
    ),
]


@pytest.mark.parametrize("only", [False, True], ids=["all-columns", "only"])
@pytest.mark.parametrize(
    ("serializer_class", "plain", "expected"), CASES, ids=[c[0].__name__ for c in CASES]
)
def test_optimized_output_equals_plain_output_in_constant_queries(
    serializer_class: type[serializers.BaseSerializer],
    plain: Callable[[], QuerySet],
    expected: int,
    only: bool,
) -> None:
    counts = []
    for size in SIZES:
        make_catalog(size - Product.objects.count())
        queryset = plain()
        optimized = optimize(queryset.model.objects.all(), serializer_class, only=only)
        expected_data, plain_count = counted(partial(render, serializer_class, queryset))
        data, count = counted(partial(render, serializer_class, optimized))
        assert data == expected_data
        assert count <= plain_count
        counts.append(count)
    assert counts == [expected, expected]


def test_plan_names_every_relation_kind() -> None:
    plan = plan_for(s.ProductSerializer)
    assert plan.select_related == ("brand", "category", "category__parent", "warranty")
    assert "tags" in plan.prefetch  # nothing to add to the related rows: a plain lookup
    reviews = lookup(plan, "reviews")
    assert reviews.queryset.query.select_related == {"customer": {}}
    assert set(plan.annotations) == {"review_total"}
    assert plan.only is None
    assert plan.unplanned == ()
    assert plan_for(s.ProductSerializer) is plan
    # A primary key field reads the foreign key column: category is not joined for it.
    assert plan_for(s.ProductWriteSerializer).select_related == ("brand",)


def test_only_keeps_the_columns_rendering_and_stitching_need() -> None:
    plan = plan_for(s.ProductSerializer, only=True)
    # category is joined (its id comes with the join); the brand's columns are named one by one.
    assert plan.only == (
        "brand__id",
        "brand__name",
        "category__name",
        "category__parent__name",
        "id",
        "name",
        "price",
        "status",
        "warranty__id",
        "warranty__years",
    )
    assert lookup(plan, "tags").plan.only == ("id", "name")
    assert lookup(plan, "reviews").plan.only == (
        "customer__id",
        "customer__name",
        "id",
        "product",  # the back-pointer prefetch stitches by
        "rating",
        "title",
    )
    counted_reviews = plan_for(s.ReviewProductSerializer, only=True)
    assert counted_reviews.only == ("id", "product", "rating")  # FK of a prefetched relation


def test_a_relation_needing_annotations_is_prefetched_not_joined() -> None:
    plan = plan_for(s.ReviewProductSerializer)
    assert plan.select_related == ()
    (product,) = plan.prefetch
    assert product.prefetch_to == "product"
    assert "review_total" in product.queryset.query.annotations


def test_prefetches_below_a_join_go_through_it() -> None:
    plan = plan_for(s.WarrantyProductSerializer)
    assert "product" in plan.select_related
    assert [p if isinstance(p, str) else p.prefetch_to for p in plan.prefetch] == [
        "product__tags",
        "product__reviews",
    ]


def test_declared_prefetch_on_the_queryset_wins_and_gets_the_nested_plan() -> None:
    make_catalog(10)
    good = Prefetch("reviews", queryset=Review.objects.filter(rating__gte=3))
    queryset = Product.objects.prefetch_related("tags", "reviews__customer", good)
    # Plain Django refuses this order of lookups; the merge puts the declared Prefetch first.
    data, count = counted(
        lambda: render(s.ProductSerializer, optimize(queryset, s.ProductSerializer))
    )
    assert count == 3  # products, tags, good reviews with their customers joined
    for product in data:
        assert all(review["rating"] >= 3 for review in product["reviews"])
    assert data == render(s.ProductSerializer, Product.objects.prefetch_related(good))


def test_a_to_one_relation_the_queryset_prefetches_stays_prefetched(db) -> None:
    """NetBox prefetches to-one relations whose __str__ reads further: rows pointing at one
    object share its instance, so str() loads once per object. The plan joins none of them
    and prefetches what it reads past them."""
    from tests.zoo import serializers as zoo
    from tests.zoo.data import make_zoo

    make_zoo(12)
    Device = zoo.Device
    queryset = optimize(Device.objects.prefetch_related("series"), zoo.DisplayedDeviceSerializer)
    assert "series" not in (queryset.query.select_related or {})
    lookups = [str(lookup) for lookup in queryset._prefetch_related_lookups]
    assert "series" in lookups and "series__maker" in lookups
    devices = list(queryset)
    by_series: dict[int, set[int]] = {}
    for device in devices:
        by_series.setdefault(device.series_id, set()).add(id(device.series))
    assert all(len(instances) == 1 for instances in by_series.values())
    assert len(devices) > len(by_series)  # series are shared: the test means something
    names, count = counted(lambda: [str(device) for device in queryset.all()])
    assert len(names) == len(devices)
    assert count == 4  # devices (their makers joined), series, the series' makers, remarks


def test_a_serializer_the_planner_cannot_see_renders_as_plain_drf_and_is_reported() -> None:
    make_catalog(4)
    plan = plan_for(s.OpaqueProductSerializer)
    assert plan.unplanned == (
        "OpaqueProductSerializer.shouting_name",
        "OpaqueProductSerializer.brand_country",
    )
    queryset = Product.objects.all()
    optimized = optimize(queryset, s.OpaqueProductSerializer, only=True)
    assert render(s.OpaqueProductSerializer, optimized) == render(
        s.OpaqueProductSerializer, queryset
    )


def test_hints_name_unknown_paths_as_unplanned() -> None:
    class Typo(serializers.ModelSerializer):
        price_label = serializers.SerializerMethodField()

        class Meta:
            model = Product
            fields = ["id", "price_label"]

        @requires(select=["brand__nmae"])
        def get_price_label(self, product: Product) -> str:
            return ""

    assert plan_for(Typo).unplanned == ("Typo.price_label (brand__nmae?)",)


def test_a_serializer_that_breaks_the_planner_renders_unoptimized_and_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class NeedsRequest(serializers.ModelSerializer):
        class Meta:
            model = Product
            fields = ["id"]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.user = self.context["request"].user

    queryset = Product.objects.all()
    assert str(optimize(queryset, NeedsRequest).query) == str(queryset.query)  # unoptimized
    assert plan_for(NeedsRequest).unplanned == ("NeedsRequest",)
    records = [r for r in caplog.records if "could not plan NeedsRequest" in r.getMessage()]
    assert {(r.levelname, r.exc_info) for r in records} == {("WARNING", None)}  # no traceback


def test_a_serializer_without_a_model_gets_an_empty_plan_naming_it() -> None:
    class Plain(serializers.Serializer):
        name = serializers.CharField()

    plan = plan_for(Plain)
    assert plan.is_empty
    assert plan.unplanned == ("Plain",)


def test_a_queryset_of_another_model_is_left_alone() -> None:
    queryset = Brand.objects.all()
    assert optimize(queryset, s.ProductSerializer) is queryset


def test_unplanned_view_serializers_are_a_system_check_warning() -> None:
    warnings = [
        message
        for message in check_query_plans()
        if message.id == "drf_scale.W001" and message.obj.__module__ == "tests.testapp.views"
    ]
    assert [warning.obj for warning in warnings] == [OpaqueProductViewSet]
    assert "OpaqueProductSerializer.brand_country" in warnings[0].msg


@pytest.mark.urls("tests.checks_urls")
def test_views_whose_serializer_class_reads_the_request_are_checked() -> None:
    messages = {
        (message.id, message.obj.__name__): message.msg
        for message in check_query_plans()
        if message.obj.__module__ == "tests.checks_urls"
    }
    # Built as an anonymous user's GET sees them: ByUserPlanned renders the opaque serializer.
    assert set(messages) == {("drf_scale.W001", "ByUserPlanned"), ("drf_scale.W002", "ByPkPlanned")}
    assert "OpaqueProductSerializer.brand_country" in messages["drf_scale.W001", "ByUserPlanned"]
    assert messages["drf_scale.W002", "ByPkPlanned"] == (
        "Check W001 could not inspect tests.checks_urls.ByPkPlanned: its get_serializer_class() "
        "raised KeyError: 'pk' for a GET list and retrieve request by an anonymous user."
    )


class TestOptimizedViews:
    def test_list_and_retrieve_run_the_same_queries_at_any_size(self) -> None:
        client = APIClient()
        make_catalog(2)
        first = Product.objects.get(name="product 1")  # with three reviews
        counts = []
        for size in SIZES:
            make_catalog(size - Product.objects.count())
            with record_queries() as listed:
                assert client.get("/api/products/", {"page_size": size}).status_code == 200
            with record_queries() as retrieved:
                detail = client.get(f"/api/products/{first.pk}/")
            counts.append((listed.count, retrieved.count))
        assert counts == [(4, 4), (4, 4)]  # COUNT(*) + 3; the detail adds latest_reviews
        assert len(detail.json()["latest_reviews"]) == 2

    def test_a_write_renders_from_a_fresh_planned_fetch(self) -> None:
        make_catalog(2)
        product = Product.objects.get(name="product 1")  # with three reviews
        new_brand = Brand.objects.create(name="new brand")
        tag = Tag.objects.create(name="fresh")
        client = APIClient()
        updated = client.patch(
            f"/api/products/{product.pk}/",
            {"brand": new_brand.pk, "tag_ids": [tag.pk]},
            format="json",
        ).json()
        assert updated["brand_name"] == "new brand"
        assert updated["tags"] == [{"id": tag.pk, "name": "fresh"}]
        assert [r["id"] for r in updated["latest_reviews"]] == list(
            product.reviews.order_by("-id").values_list("id", flat=True)[:2]
        )

        created = client.post(
            "/api/products/",
            {
                "name": "new",
                "price": "1.00",
                "brand": new_brand.pk,
                "category": product.category_id,
                "tag_ids": [tag.pk],
            },
            format="json",
        )
        assert created.status_code == 201
        # Plain DRF renders the saved instance, which has no latest_reviews: it drops the field.
        assert created.json()["latest_reviews"] == []
        assert created.json()["tags"] == [{"id": tag.pk, "name": "fresh"}]
