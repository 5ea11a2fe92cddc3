"""Shapes real DRF applications give the planner and the read plans (issue 15).

A view's ``queryset`` as a manager; a model ordered through foreign keys to ordered models
(compiled pages hold DRF's rows); generic foreign keys and generic relations planned with
prefetches; ``@requires`` on ``__str__`` and on properties.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.contenttypes.models import ContentType
from django.contrib.contenttypes.prefetch import GenericPrefetch
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import filters, generics, serializers
from rest_framework.pagination import LimitOffsetPagination, PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIRequestFactory

from drf_scale.fast import compile_read_plan
from drf_scale.mixins import FastReadMixin, OptimizedQuerysetMixin
from drf_scale.model_meta import expand_ordering
from drf_scale.pagination import KeysetPagination
from drf_scale.planner import QueryPlan, optimize, plan_for, requires
from tests.testapp.models import (
    Device,
    DeviceBySeries,
    DeviceDescending,
    Maker,
    Remark,
    Series,
)

pytestmark = pytest.mark.django_db

factory = APIRequestFactory()

# Names sort unlike the ids, so ordering by a key column and by the related name differ.
MAKERS = ["mu", "alpha", "zeta", "kappa", "beta"]


def make_devices(count: int = 60) -> list[Device]:
    makers = [Maker.objects.create(name=name) for name in MAKERS]
    series = [
        Series.objects.create(name=name, maker=maker) for maker in makers for name in ("y", "x")
    ]
    return [
        Device.objects.create(
            name=f"d{index:02d}", maker=makers[index * 7 % 5], series=series[index * 3 % 10]
        )
        for index in range(count)
    ]


def as_json(data) -> object:
    return json.loads(JSONRenderer().render(data))


class DeviceRowSerializer(serializers.ModelSerializer):
    maker_name = serializers.CharField(source="maker.name")

    class Meta:
        model = Device
        fields = ["id", "name", "maker", "series", "maker_name"]


def ids(queryset) -> list[int]:
    return [row["id"] if isinstance(row, dict) else row.pk for row in queryset]


# 1. A manager where DRF takes one.


def test_optimize_and_apply_take_a_manager():
    make_devices(3)
    planned = optimize(Device.objects, DeviceRowSerializer)
    assert planned.query.select_related == {"maker": {}}
    assert QueryPlan(select_related=("maker",)).apply(Device.objects).query.select_related
    with CaptureQueriesContext(connection) as queries:
        data = DeviceRowSerializer(planned, many=True).data
    assert len(queries) == 1
    assert as_json(data) == as_json(DeviceRowSerializer(Device.objects.all(), many=True).data)


def test_read_plan_rows_and_execute_take_a_manager():
    make_devices(3)
    expected = as_json(DeviceRowSerializer(Device.objects.all(), many=True).data)
    plan = compile_read_plan(DeviceRowSerializer)
    assert plan.compiled, plan.fallback_reasons
    assert ids(plan.rows(Device.objects)) == ids(Device.objects.all())
    assert plan.execute(Device.objects) == expected


def test_a_fallback_plan_executes_a_manager(settings):
    settings.DRF_SCALE = {**settings.DRF_SCALE, "PARTIAL_COMPILATION": True}

    class Described(DeviceRowSerializer):
        shout = serializers.SerializerMethodField()  # no @batch: DRF renders

        class Meta(DeviceRowSerializer.Meta):
            fields = [*DeviceRowSerializer.Meta.fields, "shout"]

        def get_shout(self, device) -> str:
            return device.name.upper()

    make_devices(3)
    plan = compile_read_plan(Described)
    assert plan.instance_fields == ("shout",)  # DRF renders it, from instances
    assert as_json(plan.execute(Device.objects)) == as_json(
        Described(Device.objects.all(), many=True).data
    )


class ManagerBase(generics.ListAPIView):
    """A base view whose get_queryset returns a manager, as DRF lets it (retrieve, list)."""

    serializer_class = DeviceRowSerializer

    def get_queryset(self):
        return Device.objects


class ManagerRetrieveBase(generics.RetrieveAPIView):
    serializer_class = DeviceRowSerializer

    def get_queryset(self):
        return Device.objects


class Pages(PageNumberPagination):
    page_size = 2


@pytest.mark.parametrize("mixin", [OptimizedQuerysetMixin, FastReadMixin])
@pytest.mark.parametrize("paginated", [False, True])
def test_views_take_a_manager(mixin, paginated):
    devices = make_devices(5)
    pagination = Pages if paginated else None
    lists = [
        type("Attr", (mixin, generics.ListAPIView), {"queryset": Device.objects}),
        type("Override", (mixin, ManagerBase), {}),
    ]
    for view in lists:
        view.serializer_class, view.pagination_class = DeviceRowSerializer, pagination
        plain = type("Plain", (generics.ListAPIView,), {"queryset": Device.objects.all()})
        plain.serializer_class, plain.pagination_class = DeviceRowSerializer, pagination
        got = view.as_view()(factory.get("/?page=2"))
        assert got.status_code == 200, got.data
        assert as_json(got.data) == as_json(plain.as_view()(factory.get("/?page=2")).data)
    retrieve = type("One", (mixin, ManagerRetrieveBase), {})
    got = retrieve.as_view()(factory.get("/"), pk=devices[1].pk)
    assert got.status_code == 200
    assert as_json(got.data) == as_json(DeviceRowSerializer(devices[1]).data)


# 2. Orderings through foreign keys to ordered models.


def test_expand_ordering():
    assert expand_ordering(Device, ["maker", "name"]) == ("maker__name", "name")
    assert expand_ordering(DeviceBySeries, ["series", "name"]) == (
        "series__maker__name",
        "series__name",
        "name",
    )
    assert expand_ordering(DeviceDescending, ["-maker", "name"]) == ("-maker__name", "name")
    assert expand_ordering(Device, ["-series"]) == ("-series__maker__name", "-series__name")
    # Names Django resolves otherwise stay: a key by its attname, pk, an annotation.
    assert expand_ordering(Device, ["maker_id", "pk", "-maker__id"]) == (
        "maker_id",
        "pk",
        "-maker__id",
    )
    assert expand_ordering(Device, ["maker"], skip={"maker"}) == ("maker",)


def order_by_clause(queryset) -> str:
    return str(queryset.query).rpartition(" ORDER BY ")[2]


@pytest.mark.parametrize("model", [Device, DeviceBySeries, DeviceDescending])
def test_compiled_rows_come_in_the_model_querysets_order(model):
    make_devices()
    plan = compile_read_plan(DeviceRowSerializer)
    rows = plan.rows(model.objects.all())
    assert ids(rows) == ids(model.objects.all())
    assert ids(rows) != sorted(ids(rows))  # the data makes a wrong order show
    # An explicit order_by through the relation, and a reversed queryset, too.
    for queryset in (model.objects.order_by("-series", "pk"), model.objects.all().reverse()):
        assert ids(plan.rows(queryset)) == ids(queryset)


class DeviceKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = ["id", "name", "maker"]


def test_the_order_by_clause():
    """Before: ``ORDER BY 3 ASC, 2 ASC``, the third column being the key maker_id."""
    plan = compile_read_plan(DeviceKeySerializer)
    rows = plan.rows(Device.objects.all())
    assert order_by_clause(rows) == '"testapp_maker"."name" ASC, 2 ASC'
    rows = plan.rows(DeviceBySeries.objects.all())
    # T4: the series' maker (the device's own maker is joined for no column here)
    # Django 6.1 quotes the alias
    clause = order_by_clause(rows).replace('"T4"', "T4")
    assert clause == 'T4."name" ASC, "testapp_series"."name" ASC, 2 ASC'


def list_view(model, pagination, *, fast: bool):
    bases = (FastReadMixin, generics.ListAPIView) if fast else (generics.ListAPIView,)
    attrs = {
        "queryset": model.objects.all(),
        "serializer_class": DeviceRowSerializer,
        "pagination_class": pagination,
        "filter_backends": [filters.OrderingFilter],
        "ordering_fields": ["maker", "series", "name"],
    }
    return type("Devices", bases, attrs).as_view()


class Keyset(KeysetPagination):
    page_size = 7


class KeysetByMaker(Keyset):
    ordering = ("maker", "name")


@pytest.mark.parametrize("model", [Device, DeviceBySeries, DeviceDescending])
@pytest.mark.parametrize(
    "pagination, query",
    [
        (LimitOffsetPagination, "?limit=20&offset=30"),
        (LimitOffsetPagination, "?limit=20&offset=30&ordering=-series"),
        (type("Pages25", (PageNumberPagination,), {"page_size": 25}), "?page=2"),
    ],
)
def test_compiled_pages_hold_drfs_rows(model, pagination, query):
    make_devices()
    compiled = list_view(model, pagination, fast=True)(factory.get("/" + query))
    plain = list_view(model, pagination, fast=False)(factory.get("/" + query))
    assert compiled.status_code == plain.status_code == 200
    assert compiled.data["results"]  # a page of rows, not an empty tail
    assert as_json(compiled.data) == as_json(plain.data)


def walk_keyset(view) -> list[dict]:
    rows, url = [], "/"
    while url:
        response = view(factory.get(url))
        assert response.status_code == 200, response.data
        rows += as_json(response.data["results"])
        following = response.data["next"]
        url = "/?" + urlsplit(following).query if following else None
        assert not following or "cursor" in parse_qs(urlsplit(following).query)
    return rows


@pytest.mark.parametrize("model", [Device, DeviceBySeries, DeviceDescending])
@pytest.mark.parametrize("pagination", [Keyset, KeysetByMaker])
def test_keyset_pages_are_exact_on_both_paths(model, pagination):
    """KeysetPagination orders by its own ordering (default "-pk"), never by Meta.ordering, and
    a foreign key in it by the key's value: total, and the same rows compiled or not."""
    make_devices()
    compiled = walk_keyset(list_view(model, pagination, fast=True))
    assert compiled == walk_keyset(list_view(model, pagination, fast=False))
    assert sorted(row["id"] for row in compiled) == sorted(ids(model.objects.all()))
    if pagination is Keyset:
        assert [row["id"] for row in compiled] == sorted(ids(compiled), reverse=True)
    else:
        keys = [(row["maker"], row["name"], row["id"]) for row in compiled]
        assert keys == sorted(keys)


# 3. Generic foreign keys and generic relations, planned with prefetches.


class MakerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Maker
        fields = ["id", "name"]


class DeviceBriefSerializer(serializers.ModelSerializer):
    maker = MakerSerializer()

    class Meta:
        model = Device
        fields = ["id", "name", "maker"]


class TargetField(serializers.Field):
    """Renders whatever a remark is about, from that row alone."""

    def to_representation(self, value):
        return f"{type(value).__name__}:{value.pk}:{value.name}"


class RemarkSerializer(serializers.ModelSerializer):
    target = TargetField(source="content_object", read_only=True)
    about = serializers.SerializerMethodField()

    class Meta:
        model = Remark
        fields = ["id", "body", "target", "about"]

    @requires(prefetch=["content_object"])
    def get_about(self, remark) -> str:
        return remark.content_object.name.upper()


class RemarkOnDeviceSerializer(serializers.ModelSerializer):
    device = DeviceBriefSerializer(source="content_object", read_only=True)

    class Meta:
        model = Remark
        fields = ["id", "body", "device"]


class RemarkBodySerializer(serializers.ModelSerializer):
    class Meta:
        model = Remark
        fields = ["id", "body"]


class DeviceRemarksSerializer(serializers.ModelSerializer):
    remarks = RemarkBodySerializer(many=True, read_only=True)
    remark_ids = serializers.PrimaryKeyRelatedField(source="remarks", many=True, read_only=True)
    maker = MakerSerializer()

    class Meta:
        model = Device
        fields = ["id", "name", "maker", "remarks", "remark_ids"]


def make_remarks(devices: list[Device]) -> None:
    for index, device in enumerate(devices):
        Remark.objects.create(content_object=device, body=f"on {device.name}")
        Remark.objects.create(content_object=device.maker, body=f"on maker {index}")
        Remark.objects.create(content_object=device, body=f"again {device.name}")


def rendered(serializer_class, queryset, *, plan: bool, only: bool = False):
    """The JSON and the number of queries of rendering ``queryset``, planned or as DRF does."""
    ContentType.objects.get_for_models(Device, Maker)  # the content type cache, warm
    if plan:
        queryset = optimize(queryset, serializer_class, only=only)
    with CaptureQueriesContext(connection) as queries:
        data = as_json(serializer_class(queryset, many=True).data)
    return data, len(queries)


@pytest.mark.parametrize(
    "serializer_class, model, planned",
    [
        (RemarkSerializer, Remark, 3),  # remarks, devices, makers
        (RemarkOnDeviceSerializer, Remark, 2),  # remarks, devices joined to their makers
        (DeviceRemarksSerializer, Device, 2),  # devices joined to makers, their remarks
    ],
)
@pytest.mark.parametrize("only", [False, True])
def test_generic_relations_are_planned(serializer_class, model, planned, only):
    make_remarks(make_devices(10))
    assert plan_for(serializer_class).unplanned == ()
    if serializer_class is RemarkOnDeviceSerializer:  # remarks on devices only
        queryset = Remark.objects.filter(content_type=ContentType.objects.get_for_model(Device))
    else:
        queryset = model.objects.order_by("pk")
    counts, unplanned = {}, {}
    for size in (2, 10):
        page = queryset[:size]
        data, counts[size] = rendered(serializer_class, page, plan=True, only=only)
        plain, unplanned[size] = rendered(serializer_class, page, plan=False)
        assert data == plain
    assert counts == {2: planned, 10: planned}
    assert unplanned[10] > unplanned[2] >= planned  # DRF alone: queries grow with the rows


def test_generic_prefetch_carries_the_nested_plan():
    [lookup] = plan_for(RemarkOnDeviceSerializer, only=True).prefetch
    assert isinstance(lookup, GenericPrefetch)
    [devices] = lookup.querysets
    assert devices.model is Device and devices.query.select_related == {"maker": {}}
    plan = plan_for(RemarkOnDeviceSerializer, only=True)
    assert {"content_type", "object_id"} <= set(plan.only)
    [remarks, *_] = plan_for(DeviceRemarksSerializer, only=True).prefetch
    assert remarks.prefetch_to == "remarks"
    assert {"content_type", "object_id", "body"} <= remarks.queryset.query.deferred_loading[0]


def test_a_declared_generic_prefetch_is_used_as_declared():
    devices = Device.objects.select_related("maker", "series")

    class Declared(RemarkBodySerializer):
        about = serializers.SerializerMethodField()

        class Meta(RemarkBodySerializer.Meta):
            fields = [*RemarkBodySerializer.Meta.fields, "about"]

        @requires(prefetch=[GenericPrefetch("content_object", [devices])])
        def get_about(self, remark) -> str:
            return f"{remark.content_object.maker.name} {remark.content_object.series.name}"

    make_remarks(make_devices(10))
    queryset = Remark.objects.filter(content_type=ContentType.objects.get_for_model(Device))
    counts = {}
    for size in (2, 10):
        data, counts[size] = rendered(Declared, queryset[:size], plan=True)
        assert data == rendered(Declared, queryset[:size], plan=False)[0]
    assert counts == {2: 2, 10: 2}


# 4. @requires on __str__ and on properties.


class MakerStringsSerializer(serializers.ModelSerializer):
    devices = serializers.StringRelatedField(many=True)  # Device.__str__ reads series.maker

    class Meta:
        model = Maker
        fields = ["id", "name", "devices"]


class DeviceSeriesSerializer(serializers.ModelSerializer):
    series = serializers.StringRelatedField()  # Series.__str__ reads maker

    class Meta:
        model = Device
        fields = ["id", "series"]


class DevicePropertiesSerializer(serializers.ModelSerializer):
    text = serializers.CharField(source="__str__")
    family = serializers.ReadOnlyField()

    class Meta:
        model = Device
        fields = ["id", "text", "family"]


@pytest.mark.parametrize(
    "serializer_class, model, planned",
    [
        (MakerStringsSerializer, Maker, 2),  # makers, devices joined to series and makers
        (DeviceSeriesSerializer, Device, 1),  # devices joined to series and their makers
        (DevicePropertiesSerializer, Device, 1),
    ],
)
@pytest.mark.parametrize("only", [False, True])
def test_requires_on_str_and_properties_is_honoured(serializer_class, model, planned, only):
    make_devices(30)
    assert plan_for(serializer_class).unplanned == ()
    counts, unplanned = {}, {}
    for size in (2, 10):
        page = model.objects.order_by("pk")[:size]
        data, counts[size] = rendered(serializer_class, page, plan=True, only=only)
        plain, unplanned[size] = rendered(serializer_class, page, plan=False)
        assert data == plain
    assert counts == {2: planned, 10: planned}
    assert unplanned[10] > unplanned[2] > planned
