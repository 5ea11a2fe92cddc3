"""The mixins in every order: the same answers, or a system check that names the class.

Each of the 720 orders of the six public mixins, before DRF's ModelViewSet, serves one script
of requests (list twice, detail twice, a 304, a stale and a current If-Match, the read after
it); the transcripts (status, JSON, ETag, X-Cache and query count of every response) must be
those of ScaleModelViewSet. Stacks that cannot work are built too, and the check reports them.
"""

import itertools
from decimal import Decimal
from typing import Any

import orjson
import pytest
from django.db import connection, models, reset_queries
from django.test import override_settings
from django.test.utils import CaptureQueriesContext, isolate_apps
from rest_framework import serializers, viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from drf_scale.cache import CachedListMixin, CachedRetrieveMixin
from drf_scale.cache.store import get_store
from drf_scale.checks import check_composite_primary_keys, check_view_composition
from drf_scale.conditional import ConditionalWriteMixin
from drf_scale.mixins import FastReadMixin, OptimizedQuerysetMixin, ReadWriteSerializerMixin
from drf_scale.pagination import KeysetPagination
from drf_scale.renderers import ORJSONParser, ORJSONRenderer
from drf_scale.viewsets import ScaleModelViewSet, ScaleReadOnlyModelViewSet
from tests.testapp.models import Brand, Category, Product, Tag

pytestmark = pytest.mark.django_db(transaction=True)  # invalidations run on commit

MIXINS = (
    CachedListMixin,
    CachedRetrieveMixin,
    ConditionalWriteMixin,
    FastReadMixin,
    OptimizedQuerysetMixin,
    ReadWriteSerializerMixin,
)


class BrandSerializer(serializers.ModelSerializer):
    class Meta:
        model = Brand
        fields = ["id", "name"]


class ProductReadSerializer(serializers.ModelSerializer):
    brand = BrandSerializer()
    tags = serializers.SlugRelatedField(many=True, slug_field="name", read_only=True)

    class Meta:
        model = Product
        fields = ["id", "name", "price", "brand", "tags"]


class ProductWriteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["name", "price", "brand", "category"]


class Pages(KeysetPagination):
    page_size = 3


class Contract:
    """What every composition declares: the attributes ScaleModelViewSet reads too."""

    queryset = Product.objects.all()
    serializer_class = ProductReadSerializer
    read_serializer_class = ProductReadSerializer
    write_serializer_class = ProductWriteSerializer
    pagination_class = Pages
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    renderer_classes = [ORJSONRenderer]
    parser_classes = [ORJSONParser]
    cache_scope = "public"
    query_budget = None


class Reference(Contract, ScaleModelViewSet):
    pass


def composed(order: tuple[type, ...], *, base: type = viewsets.ModelViewSet) -> type:
    name = "".join(mixin.__name__.removesuffix("Mixin")[:6] for mixin in order)
    return type(name, (Contract, *order, base), {"__module__": __name__})


@pytest.fixture
def catalog():
    brand = Brand.objects.create(name="Acme")
    category = Category.objects.create(name="Tools")
    tags = [Tag.objects.create(name=f"t{i}") for i in range(2)]
    products = []
    for i in range(5):
        product = Product.objects.create(
            name=f"P{i}", price=Decimal("9.50") + i, brand=brand, category=category
        )
        product.tags.set(tags[: i % 3])
        products.append(product)
    return products


def call(view_class: type, actions: dict[str, str], method: str, path: str, **extra: Any):
    factory = APIRequestFactory()
    body = extra.pop("body", None)
    request = getattr(factory, method)(path, body, format="json", **extra)
    view = view_class.as_view(actions)
    pk = path.rstrip("/").rsplit("/", 1)[-1]
    kwargs = {"pk": pk} if pk.isdigit() else {}
    reset_queries()  # the query log keeps 9,000 entries: counts past it would be wrong
    with CaptureQueriesContext(connection) as queries:
        response = view(request, **kwargs)
        if hasattr(response, "render"):
            response.render()
    return response, len(queries)


def transcript(view_class: type, product: Product) -> list[tuple[Any, ...]]:
    """The script's responses: status, JSON, ETag, X-Cache and queries of each."""
    get_store().clear()
    listing = {"get": "list"}
    detail = {"get": "retrieve", "patch": "partial_update"}
    url = f"/products/{product.pk}/"
    steps: list[tuple[Any, ...]] = []

    def run(actions: dict[str, str], method: str, path: str, **extra: Any) -> Any:
        response, queries = call(view_class, actions, method, path, **extra)
        data = orjson.loads(response.content) if response.content else None
        steps.append(
            (response.status_code, data, response.get("ETag"), response.get("X-Cache"), queries)
        )
        return response

    run(listing, "get", "/products/")
    run(listing, "get", "/products/")
    etag = run(detail, "get", url)["ETag"]
    run(detail, "get", url)
    run(detail, "get", url, HTTP_IF_NONE_MATCH=etag)
    run(detail, "patch", url, body={"name": "Lost"}, HTTP_IF_MATCH='"stale"')
    saved = run(detail, "patch", url, body={"name": "Renamed"}, HTTP_IF_MATCH=etag)
    run(detail, "get", url)
    run(detail, "patch", url, body={"name": product.name}, HTTP_IF_MATCH=saved["ETag"])
    return steps


@pytest.mark.once  # 720 compositions x 9 requests: the main environment's passes
@override_settings(DRF_SCALE={"QUERY_CHECKS": "off", "CACHE_URL": None})
def test_every_order_of_the_mixins_answers_as_the_composed_viewset(catalog):
    expected = transcript(Reference, catalog[1])
    statuses = [step[0] for step in expected]
    assert statuses == [200, 200, 200, 200, 304, 412, 200, 200, 200]
    assert [step[3] for step in expected[:4]] == ["0/3 hit", "3/3 hit", "miss", "hit"]
    assert expected[3][4] == 0  # a detail hit reads no row
    assert expected[7][1]["name"] == "Renamed"  # the write invalidated the cached detail
    orders = list(itertools.permutations(MIXINS))
    assert len(orders) == 720
    classes = [composed(order) for order in orders]
    differing = [cls.__name__ for cls in classes if transcript(cls, catalog[1]) != expected]
    assert differing == []
    assert [m for m in check_view_composition() if m.obj in classes] == []


@pytest.mark.parametrize("mixin", MIXINS, ids=lambda mixin: mixin.__name__)
def test_a_mixin_after_drfs_viewset_is_reported(mixin):
    others = tuple(m for m in MIXINS if m is not mixin)
    view_class = type(
        f"Late{mixin.__name__}", (Contract, *others, viewsets.ModelViewSet, mixin), {}
    )
    found = [m for m in check_view_composition() if m.obj is view_class]
    assert {m.id for m in found} == {"drf_scale.E070"}
    assert mixin.__name__ in " ".join(m.msg for m in found)


def test_an_override_that_skips_super_or_the_hook_is_reported():
    class OwnSerializerChoice(Contract, ReadWriteSerializerMixin, viewsets.ModelViewSet):
        pass

    class Hiding(OwnSerializerChoice):
        def get_serializer_class(self):
            return ProductReadSerializer

    class OwnUpdate(Contract, ConditionalWriteMixin, viewsets.ModelViewSet):
        def update(self, request, *args, **kwargs):
            serializer = self.get_serializer(self.get_object(), data=request.data)
            serializer.is_valid(raise_exception=True)
            serializer.save()
            return self.finalize_response(request, serializer.data)

    class Cooperative(OwnSerializerChoice):
        def get_serializer_class(self):
            return super().get_serializer_class()

    messages = check_view_composition()
    assert [m.id for m in messages if m.obj is Hiding] == ["drf_scale.E071"]
    assert [m.id for m in messages if m.obj is OwnUpdate] == ["drf_scale.E072"]
    assert [m for m in messages if m.obj in (Cooperative, OwnSerializerChoice)] == []


def test_a_mixin_on_a_view_that_is_not_generic_is_reported():
    """NetBox's UserConfigViewSet is a plain ViewSet: it has no get_serializer_class()."""

    class PlainViewSet(FastReadMixin, OptimizedQuerysetMixin, viewsets.ViewSet):
        def list(self, request):
            return Response({})

    class PlainView(FastReadMixin, APIView):
        pass

    messages = check_view_composition()
    for view_class in (PlainViewSet, PlainView):
        found = [m for m in messages if m.obj is view_class]
        assert [m.id for m in found] == ["drf_scale.E073"]
        assert "no generic view" in found[0].msg


def test_a_cached_list_without_the_compiled_plan_is_reported():
    class Uncompiled(Contract, CachedListMixin, viewsets.ModelViewSet):
        pass

    found = [m.id for m in check_view_composition() if m.obj is Uncompiled]
    assert found == ["drf_scale.W070"]


class Plain(ScaleModelViewSet):
    """What a user writes when changing viewsets.ModelViewSet: nothing else."""

    queryset = Product.objects.all()
    serializer_class = ProductReadSerializer
    read_serializer_class = ProductReadSerializer
    write_serializer_class = ProductWriteSerializer
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    query_budget = None


@override_settings(DRF_SCALE={"QUERY_CHECKS": "off", "CACHE_URL": None})
def test_the_plain_viewset_pages_by_keyset_creates_and_deletes(catalog):
    page, _ = call(Plain, {"get": "list"}, "get", "/products/")
    body = orjson.loads(page.content)
    assert [row["id"] for row in body["results"]] == [p.pk for p in reversed(catalog)]
    assert set(body) == {"next", "previous", "results"}  # KeysetPagination, "-pk"
    assert "X-Cache" not in page  # cache_scope None: no representation cache
    brand, category = catalog[0].brand, catalog[0].category
    fields = {"name": "New", "price": "3.00", "brand": brand.pk, "category": category.pk}
    created, _ = call(Plain, {"post": "create"}, "post", "/products/", body=fields)
    assert created.status_code == 201
    data = orjson.loads(created.content)
    assert data == {"id": data["id"], "name": "New", "price": "3.00",
                    "brand": {"id": brand.pk, "name": "Acme"}, "tags": []}  # fmt: skip
    detail, _ = call(Plain, {"get": "retrieve"}, "get", f"/products/{data['id']}/")
    assert created["ETag"] == detail["ETag"]
    detail_actions = {"delete": "destroy"}
    stale, _ = call(Plain, detail_actions, "delete", f"/products/{data['id']}/",
                    HTTP_IF_MATCH='"stale"')  # fmt: skip
    assert stale.status_code == 412
    gone, _ = call(Plain, detail_actions, "delete", f"/products/{data['id']}/",
                   HTTP_IF_MATCH=detail["ETag"])  # fmt: skip
    assert gone.status_code == 204
    assert not Product.objects.filter(pk=data["id"]).exists()


def test_the_viewsets_pagination_class_follows_the_setting(catalog):
    with override_settings(DRF_SCALE={"PAGINATION_CLASS": "tests.test_composition.Pages"}):
        assert Plain.pagination_class is Pages
        page, _ = call(Plain, {"get": "list"}, "get", "/products/")
        assert len(orjson.loads(page.content)["results"]) == 3
    assert Plain.pagination_class is KeysetPagination


@isolate_apps("tests.testapp")
def test_a_composite_primary_key_is_reported_where_drf_scale_cannot_serve_it():
    class Stock(models.Model):
        pk = models.CompositePrimaryKey("store", "sku")
        store = models.IntegerField()
        sku = models.CharField(max_length=20)
        units = models.IntegerField()

        class Meta:
            app_label = "testapp"

    class StockSerializer(serializers.ModelSerializer):
        class Meta:
            model = Stock
            fields = ["store", "sku", "units"]

    class Stocks(ScaleReadOnlyModelViewSet):
        queryset = Stock.objects.all()
        serializer_class = StockSerializer
        cache_scope = "public"

    class PlainStocks(Stocks):
        cache_scope = None
        fast_reads = False
        pagination_class = PageNumberPagination

    found = {m.obj: m for m in check_composite_primary_keys() if m.obj in (Stocks, PlainStocks)}
    assert list(found) == [Stocks]
    assert found[Stocks].id == "drf_scale.E080"
    for part in ("the representation cache", "compiled reads", "keyset pagination"):
        assert part in found[Stocks].msg


@pytest.mark.django_db
def test_a_mixin_on_a_view_that_is_not_generic_changes_nothing():
    """With E073 silenced, NetBox's UserConfigViewSet (its own get_queryset(), no serializer
    class) answers as under DRF, not a 500."""
    from rest_framework.test import APIRequestFactory

    class UserConfigViewSet(viewsets.ViewSet):
        def get_queryset(self):
            return Brand.objects.order_by("pk")

        def list(self, request):
            first = self.get_queryset().first()
            return Response({"first": None if first is None else first.pk})

    class Mixed(FastReadMixin, OptimizedQuerysetMixin, UserConfigViewSet):
        pass

    response = Mixed.as_view({"get": "list"})(APIRequestFactory().get("/"))
    assert (response.status_code, response.data) == (200, {"first": None})
