"""The zoo (tests/zoo/): each real-world serializer shape through ScaleReadOnlyModelViewSet
renders DRF's JSON (key order included) in DRF's row order, for a staff and a plain user, in
queries constant in the page size.

Each shape's view is called with APIRequestFactory twice per user, ``?limit=2`` and
``?limit=10`` (DRF's LimitOffsetPagination: a count, then the page), against the same view on
DRF's ReadOnlyModelViewSet. ``python -m tests.zoo.report`` prints the compiled coverage.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers
from rest_framework.test import APIRequestFactory, force_authenticate

from drf_scale.fast import compile_read_plan
from tests.testapp.models import Device
from tests.zoo.data import make_zoo
from tests.zoo.serializers import (
    DeviceSerializer,
    DynamicDeviceSerializer,
    DynamicFieldsModelSerializer,
)
from tests.zoo.views import SETTINGS, SHAPES, Shape

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("zoo_settings")]

factory = APIRequestFactory()

# Queries per request, as measured: (DRF at 2 rows, DRF at 10, ours at 2, ours at 10), for
# the staff user and the plain user when they differ. Paged views count the rows first.
QUERIES: dict[str, tuple[int, int, int, int] | dict[str, tuple[int, int, int, int]]] = {
    "hyperlinked": (2, 2, 2, 2),
    "hyperlinked to-many": (4, 12, 3, 3),  # the labels: one query
    # Ours: compiled per field set; the count, the instances (family's joins), rows read off.
    "dynamic fields": (6, 22, 2, 2),
    "dynamic omit": (6, 22, 2, 2),
    "permission-aware user=": (2, 2, 2, 2),
    "per-user @batch": {"staff": (2, 2, 2, 2), "user": (4, 12, 3, 3)},  # staff: no grants
    # Ours: the instances for can_change, their grants (staff too).
    "per-user method": {"staff": (2, 2, 3, 3), "user": (4, 12, 3, 3)},
    "list_serializer_class": (2, 2, 2, 2),
    "to_representation": (4, 12, 3, 3),  # DRF's path, planned: the remarks prefetched
    "generic foreign key": (4, 12, 4, 4),
    "generic relation": (6, 22, 3, 3),
    "files and custom field": (2, 2, 2, 2),
    "properties and __str__": (8, 32, 2, 2),  # DRF's path, planned: one join
    "view annotation": (2, 2, 2, 2),  # remark_count: a column of the rows
    "ordering through FKs": (2, 2, 2, 2),
    "manager queryset": (3, 11, 1, 1),  # unpaged: no count
    "custom related field": (4, 12, 2, 2),  # the content types: joined
    "custom related fields, many": (4, 12, 3, 3),  # the labels: one query
    "display and brief nested": (10, 42, 3, 3),  # the count, the instances, the remarks
    # The list serializer's own code: the labels, the devices its custom fields name.
    "custom fields list": (4, 4, 4, 4),
}

# Shapes where drf_scale's JSON is not DRF's: bugs in the library, not in the shape.
BUGS: dict[str, str] = {}


@pytest.fixture
def zoo_settings():
    """The zoo's URLs (hyperlinks) and MEDIA_URL (files)."""
    with override_settings(**SETTINGS):
        yield


def call(shape: Shape, scale: bool, user, limit: int) -> tuple[str, int]:
    """The JSON body (re-dumped, key order kept) and the queries of one list request."""
    view = shape.view(scale).as_view({"get": "list"})
    query = {**shape.query, "limit": limit} if shape.paginated else shape.query
    request = factory.get("/zoo/", query)
    force_authenticate(request, user)
    with CaptureQueriesContext(connection) as queries:
        response = view(request)
        response.render()
    assert response.status_code == 200, response.content
    return json.dumps(json.loads(response.content), sort_keys=False), len(queries)


def params() -> list:
    return [
        pytest.param(shape, id=shape.name, marks=[bug(shape.name)] if shape.name in BUGS else [])
        for shape in SHAPES
    ]


def bug(name: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=BUGS[name])


@pytest.mark.parametrize("who", ["staff", "user"])
@pytest.mark.parametrize("shape", params())
def test_the_zoo_renders_drfs_json_in_constant_queries(shape: Shape, who: str):
    zoo = make_zoo(12 if shape.paginated else 10)
    user = zoo.staff if who == "staff" else zoo.user
    counts = {}
    for limit in (10, 2):
        if not shape.paginated:  # the whole list: keep ``limit`` rows
            model = shape.queryset.model
            model.objects.exclude(pk__in=model.objects.order_by("pk")[:limit]).delete()
        expected, drf_queries = call(shape, False, user, limit)
        got, our_queries = call(shape, True, user, limit)
        assert got == expected  # the same rows, in the same order, keys in the same order
        page = json.loads(got)
        assert len(page["results"] if shape.paginated else page) == limit
        counts[limit] = (drf_queries, our_queries)
    (drf_2, ours_2), (drf_10, ours_10) = counts[2], counts[10]
    measured = (drf_2, drf_10, ours_2, ours_10)
    assert ours_2 == ours_10, measured
    expected_queries = QUERIES[shape.name]
    if isinstance(expected_queries, dict):
        expected_queries = expected_queries[who]
    assert measured == expected_queries


def test_coverage_where_it_is_stable():
    """Shapes whose plan is certain: compiled whole, or DRF's path (their own methods)."""
    from tests.zoo import serializers as zoo

    for whole in (zoo.HyperlinkedDeviceSerializer, zoo.GadgetryFilesSerializer,
                  zoo.DeviceSerializer, zoo.DeviceMakerNameSerializer,
                  zoo.BatchedCanChangeSerializer, zoo.DeviceRemarkCountSerializer,
                  zoo.RemarkTypeSerializer, zoo.GadgetryLabelsSerializer,
                  zoo.NumberedDeviceSerializer):  # fmt: skip
        plan = compile_read_plan(whole)
        assert plan.compiled and not plan.fallback_reasons, plan.fallback_reasons
    plan = compile_read_plan(zoo.CustomFieldsGadgetSerializer)  # its list's code on instances
    assert (plan.coverage, plan.fallback_reasons, plan.pages_instances) == (1.0, (), True)
    plan = compile_read_plan(zoo.RemarkedDeviceSerializer)
    assert not plan.compiled and plan.fallback_reasons


@pytest.mark.parametrize("name", ["dynamic fields", "permission-aware user="])
def test_serializers_shaped_per_request_compile_in_the_drop_in_viewset(name: str):
    from tests.zoo.report import view_plan
    from tests.zoo.views import BY_NAME

    assert view_plan(BY_NAME[name], staff=True) is not None


@pytest.mark.parametrize("who", ["staff", "user"])
@pytest.mark.parametrize("shape", params())
def test_the_zoo_retrieves_drfs_json(shape: Shape, who: str):
    zoo = make_zoo(4)
    user = zoo.staff if who == "staff" else zoo.user
    for pk in shape.queryset.model.objects.order_by("pk").values_list("pk", flat=True)[:2]:
        bodies = []
        for scale in (False, True):
            view = shape.view(scale).as_view({"get": "retrieve"})
            request = factory.get(f"/zoo/{pk}/", shape.query)
            force_authenticate(request, user)
            response = view(request, pk=pk)
            response.render()
            assert response.status_code == 200, response.content
            bodies.append(json.dumps(json.loads(response.content)))
        assert bodies[1] == bodies[0]


class _ShoutingDynamicSerializer(DynamicDeviceSerializer):
    """Shaped per request, and its own to_representation: its class rules compiling out."""

    def to_representation(self, instance):
        data = super().to_representation(instance)
        return {**data, "name": data["name"].upper()}


@pytest.mark.parametrize("partial", [False, True], ids=["partial off", "partial on"])
@pytest.mark.parametrize("serializer", [DynamicDeviceSerializer, _ShoutingDynamicSerializer])
@pytest.mark.parametrize("action", ["list", "retrieve"])
def test_a_serializer_shaped_per_request_is_built_once_per_request(
    serializer, action, partial, monkeypatch
):
    """One build per request, as under DRF. With partial plans off, ``family`` (from
    instances) sends DynamicDeviceSerializer to DRF's path, which renders with the serializer
    the view built for the plan; the shouting one is never built for a plan."""
    with override_settings(DRF_SCALE={**settings.DRF_SCALE, "PARTIAL_COMPILATION": partial}):
        responses = _list_or_retrieve_counting_builds(serializer, action, monkeypatch)
    assert responses[1] == responses[0]
    assert "series" not in (responses[0] if action == "retrieve" else responses[0]["results"][0])


def _list_or_retrieve_counting_builds(serializer, action, monkeypatch) -> list:
    """DRF's and drf_scale's responses, each view built once per request, as asserted."""
    make_zoo(4)
    builds = []
    init = DynamicFieldsModelSerializer.__init__

    def counted(self, *args, **kwargs):
        builds.append(type(self))
        init(self, *args, **kwargs)

    monkeypatch.setattr(DynamicFieldsModelSerializer, "__init__", counted)
    shape = Shape("built once", serializer, Device.objects.all(), {"omit": "series"})
    pk = Device.objects.order_by("pk").values_list("pk", flat=True)[0]
    responses = []
    for scale in (False, True):
        view = shape.view(scale).as_view({"get": action})
        for _ in range(2):  # the first also builds one to plan the class's queryset, once
            builds.clear()
            request = factory.get("/zoo/", {**shape.query, "limit": 3})
            response = view(request, pk=pk) if action == "retrieve" else view(request)
            response.render()
            assert response.status_code == 200, response.content
        assert builds == [serializer]
        responses.append(json.loads(response.content))
    return responses


def test_compiled_reads_name_columns_or_the_field_renders_from_instances():
    from tests.zoo.serializers import ContentTypeField, Remark

    class GuessingField(ContentTypeField):
        compiled_reads = ("app_label", "verbose_name")  # a property of ContentType

    class GuessingSerializer(serializers.ModelSerializer):
        content_type = GuessingField(read_only=True)

        class Meta:
            model = Remark
            fields = ["id", "content_type"]

    plan = compile_read_plan(GuessingSerializer)
    assert plan.fallback_reasons == (
        "GuessingSerializer.content_type: GuessingField — compiled_reads names "
        "'verbose_name', no column of ContentType",
    )


class _SeesThePage:
    """paperless-ngx's shape: the context batches per-object permissions for the page."""

    seen: list[bool] = []

    def get_serializer_context(self):
        _SeesThePage.seen.append(hasattr(self.paginator, "count"))  # set by paginating
        return super().get_serializer_context()


@pytest.mark.parametrize(
    ("partial", "serializer"),
    [(False, DynamicDeviceSerializer), (True, DynamicDeviceSerializer), (True, DeviceSerializer)],
    ids=["DRF's path", "partial plan", "whole plan"],
)
def test_a_view_context_reading_the_page_sees_it(partial, serializer):
    """Rendered by DRF, by a partial plan, or by a whole one (its rows read off instances,
    the view's context being its own): the context comes once, after pagination, as under
    DRF, in DRF's queries."""
    make_zoo(4)
    shape = Shape(
        "context", serializer, Device.objects.all(), {"omit": "series"}, hooks=(_SeesThePage,)
    )
    with override_settings(DRF_SCALE={**settings.DRF_SCALE, "PARTIAL_COMPILATION": partial}):
        bodies = []
        for scale in (False, True):
            _SeesThePage.seen.clear()
            view = shape.view(scale).as_view({"get": "list"})
            with CaptureQueriesContext(connection) as queries:
                response = view(factory.get("/zoo/", {"omit": "series", "limit": 2}))
                response.render()
            assert response.status_code == 200
            assert _SeesThePage.seen == [True]  # once, after pagination, as under DRF
            bodies.append(json.loads(response.content))
        assert bodies[1] == bodies[0]
        assert len(queries) == 2  # ours: the count, the page (its relations joined)


def test_a_view_context_said_not_to_read_the_page_comes_before_it():
    make_zoo(4)
    shape = Shape("context", DeviceSerializer, Device.objects.all(), hooks=(_SeesThePage,))
    view_class = shape.view(True)
    view_class.context_reads_page = False
    _SeesThePage.seen.clear()
    response = view_class.as_view({"get": "list"})(factory.get("/zoo/", {"limit": 2}))
    assert response.status_code == 200
    assert _SeesThePage.seen == [False]  # before the page of values() rows


class _SerializerFromContext:
    """A view whose get_serializer() reads a key of its own context."""

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "omit": "series"}

    def get_serializer(self, *args, **kwargs):
        self.get_serializer_context()["omit"]  # KeyError in DRF's own context
        return super().get_serializer(*args, **kwargs)


def test_a_get_serializer_needing_the_views_context_renders_through_drf(caplog):
    make_zoo(4)
    shape = Shape("from context", DynamicDeviceSerializer, Device.objects.all(),
                  hooks=(_SerializerFromContext,))  # fmt: skip
    bodies = []
    drf, ours = (shape.view(scale).as_view({"get": "list"}) for scale in (False, True))
    for view in (drf, ours, ours):
        response = view(factory.get("/zoo/", {"limit": 3}))
        response.render()
        assert response.status_code == 200, response.content
        bodies.append(json.loads(response.content))
    assert bodies[1] == bodies[2] == bodies[0]
    said = [r.getMessage() for r in caplog.records if r.name == "drf_scale.mixins"]
    assert len(said) == 1  # once per view class
    assert "get_serializer() raised KeyError: 'omit'" in said[0]


class _FlagsContext:
    def get_serializer_context(self):
        return {**super().get_serializer_context(), "flag": "on"}


class _FlaggedDeviceSerializer(DynamicDeviceSerializer):
    """Shaped per request, partly compiled: ``flag`` renders from instances, reading the
    view's own context key (paperless-ngx's tags read their children map there)."""

    flag = serializers.SerializerMethodField()

    class Meta(DynamicDeviceSerializer.Meta):
        fields = [*DynamicDeviceSerializer.Meta.fields, "flag"]

    def get_flag(self, device):
        return self.context["flag"]


@pytest.mark.parametrize("action", ["list", "retrieve"])
def test_instance_fields_of_a_per_request_serializer_read_the_views_context(action):
    make_zoo(4)
    shape = Shape("flags", _FlaggedDeviceSerializer, Device.objects.all(), hooks=(_FlagsContext,))
    pk = Device.objects.order_by("pk").values_list("pk", flat=True)[0]
    bodies = []
    for scale in (False, True):
        view = shape.view(scale).as_view({"get": action})
        for _ in range(2):  # compiled on the first request, from the plan cache on the second
            request = factory.get("/zoo/", {"limit": 3})
            response = view(request, pk=pk) if action == "retrieve" else view(request)
            response.render()
            assert response.status_code == 200, response.content
        bodies.append(json.loads(response.content))
    assert bodies[1] == bodies[0]
    assert (bodies[1] if action == "retrieve" else bodies[1]["results"][0])["flag"] == "on"
