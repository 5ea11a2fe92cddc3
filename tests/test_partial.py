"""Partial compilation: fields the compiler cannot read render from instances, by DRF."""

import functools
import json
from types import MappingProxyType, SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers, viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIRequestFactory, force_authenticate

from drf_scale import fast as fast_module
from drf_scale.fast import batch, compile_read_plan
from drf_scale.mixins import FastReadMixin, OptimizedQuerysetMixin, ReadWriteSerializerMixin
from drf_scale.planner import optimize
from tests.fastapp import serializers as fast
from tests.fastapp.data import make_gadgets
from tests.fastapp.models import Gadget, Part

pytestmark = pytest.mark.django_db


def as_json(data) -> str:
    return JSONRenderer().render(data).decode()


def drf(serializer_class, queryset, context=None) -> str:
    queryset = optimize(queryset, serializer_class)
    return as_json(serializer_class(queryset, many=True, context=context or {}).data)


def count_queries(function) -> tuple[object, int]:
    with CaptureQueriesContext(connection) as captured:
        result = function()
    return result, len(captured)


class ShoutingPartSerializer(serializers.ModelSerializer):
    shout = serializers.SerializerMethodField()

    class Meta:
        model = Part
        fields = ["id", "name", "shout"]

    def get_shout(self, part: Part) -> str:
        return part.name.upper()


class PartialGadgetSerializer(serializers.ModelSerializer):
    """Compiled columns and relations between fields only DRF can render."""

    shout = serializers.ReadOnlyField()  # a model property
    both = fast.InstanceField(source="*")
    maker_text = serializers.StringRelatedField(source="maker")
    maker_detail = fast.MakerSerializer(source="maker", read_only=True)
    method = serializers.SerializerMethodField()
    parts = ShoutingPartSerializer(many=True, read_only=True)  # a nested instance field
    part_names = serializers.SlugRelatedField(
        source="parts", many=True, slug_field="name", read_only=True
    )
    counted = serializers.IntegerField(read_only=True)  # the view's annotation
    skipped = serializers.CharField(source="maker.name", read_only=True)  # SkipField on None

    class Meta:
        model = Gadget
        fields = [
            "id", "shout", "name", "both", "price", "maker_text", "maker", "maker_detail",
            "method", "seen_at", "parts", "labels", "part_names", "counted", "skipped",
        ]  # fmt: skip

    def get_method(self, gadget: Gadget) -> str:
        return f"{gadget.pk}/{gadget.rank}"


INSTANCE = ("shout", "both", "maker_text", "method", "parts")


def annotated():
    return Gadget.objects.annotate(counted=Count("labels")).order_by("-id")


def test_partial_plan_reports_its_fields():
    plan = compile_read_plan(PartialGadgetSerializer)
    assert plan.compiled
    assert plan.instance_fields == INSTANCE
    assert set(plan.compiled_fields) | set(INSTANCE) == set(PartialGadgetSerializer.Meta.fields)
    assert plan.coverage == pytest.approx(10 / 15)
    paths = [
        reason.split(":")[0].removeprefix("PartialGadgetSerializer.")
        for reason in plan.fallback_reasons
    ]
    assert paths == ["shout", "both", "maker_text", "method", "parts[].shout"]
    assert plan.fallback_reasons[4].endswith(
        "SerializerMethodField — get_shout() runs once per instance; "
        "decorate it with @drf_scale.fast.batch(columns...)"
    )
    assert plan.describe() == (  # what check W032 and scale_audit say of it
        f"PartialGadgetSerializer renders {', '.join(INSTANCE)} through DRF from instances "
        "(67% of its fields compiled)"
    )


@pytest.mark.parametrize("count", [2, 10])
def test_partial_output_is_drfs_in_constant_queries(count):
    make_gadgets(count)
    plan = compile_read_plan(PartialGadgetSerializer)
    result, queries = count_queries(lambda: as_json(plan.execute(annotated())))
    assert result == drf(PartialGadgetSerializer, annotated())
    assert json.loads(result)[0]["counted"] is not None
    # the instances (their makers joined), their labels, their parts (prefetched for the
    # parts' instance field, which the compiled part names read too)
    assert queries == 3


@pytest.mark.parametrize(
    "counted",
    [
        serializers.IntegerField(read_only=True),  # DRF skips it
        serializers.IntegerField(read_only=True, allow_null=True),  # DRF renders None
    ],
    ids=["skipped", "null"],
)
def test_a_view_annotation_compiles_and_is_drfs_without_it(counted):
    """A field reading what only the view's queryset annotates compiles to a column of the
    rows; on a queryset without it, it renders as DRF renders a missing attribute."""

    class Counted(serializers.ModelSerializer):
        class Meta:
            model = Gadget
            fields = ["id", "counted", "name"]

    Counted._declared_fields["counted"] = counted
    make_gadgets(3)
    plan = compile_read_plan(Counted)
    assert (plan.compiled, plan.fallback_reasons) == (True, ())
    extra = Gadget.objects.extra(select={"counted": "id * 2"}).order_by("-id")
    for queryset in (annotated(), Gadget.objects.order_by("-id"), extra):
        result, queries = count_queries(lambda q=queryset: as_json(plan.execute(q)))
        assert result == drf(Counted, queryset)
        assert queries == 1
    assert "counted" in json.loads(drf(Counted, annotated()))[0]


class OwnerMethodSerializer(serializers.ModelSerializer):
    """paperless-ngx's shape: a method field reading a relation the view's queryset joins
    (its user_can_change reads obj.owner), beside compiled relations."""

    maker_name = serializers.SerializerMethodField()
    labels = serializers.SlugRelatedField(many=True, slug_field="slug", read_only=True)

    class Meta:
        model = Gadget
        fields = ["id", "name", "maker_name", "labels"]

    def get_maker_name(self, gadget: Gadget) -> str | None:
        return gadget.maker.name if gadget.maker else None


@pytest.mark.parametrize("count", [2, 10])
def test_instances_load_as_the_views_queryset_does_for_a_method_field(count):
    make_gadgets(count)
    plan = compile_read_plan(OwnerMethodSerializer)
    assert plan.instance_fields == ("maker_name",)
    queryset = Gadget.objects.select_related("maker").order_by("id")
    result, queries = count_queries(lambda: as_json(plan.execute(queryset)))
    assert result == drf(OwnerMethodSerializer, queryset)
    assert queries == 2  # the instances, their makers joined as the view's queryset does; labels


class RemembersGadgets(serializers.Field):
    """NetBox's CustomFieldsDataField keeps what it queried on itself, for one request."""

    def to_representation(self, value):
        if not hasattr(self, "_known"):
            self._known = Gadget.objects.count()
        return f"{value} of {self._known}"


class RemembersSerializer(serializers.ModelSerializer):
    name = RemembersGadgets()

    class Meta:
        model = Gadget
        fields = ["id", "name"]


def test_a_field_of_ones_own_starts_each_render_afresh_as_drf_builds_it_per_request():
    make_gadgets(2)
    plan = compile_read_plan(RemembersSerializer)
    assert plan.compiled and not plan.instance_fields

    def both() -> tuple[str, str]:
        queryset = Gadget.objects.order_by("id")
        return as_json(plan.execute(queryset)), drf(RemembersSerializer, queryset.all())

    ours, expected = both()
    assert ours == expected
    Gadget.objects.create(name="later")  # a later request: DRF's fresh serializer counts 3
    ours, expected = both()
    assert ours == expected
    assert json.loads(ours)[0]["name"] == "Gadget 0 of 3"


# Everywhere the plan is used: views (list, retrieve), the cache's render_by_pk, writes.


class PartialViewSet(FastReadMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = PartialGadgetSerializer
    pagination_class = PageNumberPagination

    def get_queryset(self):
        return annotated()


class PlainViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = PartialGadgetSerializer
    pagination_class = PageNumberPagination

    def get_queryset(self):
        return optimize(annotated(), PartialGadgetSerializer)


def call(view_class, action, **kwargs):
    actions = {"get": action}
    request = APIRequestFactory().get("/gadgets/")
    response = view_class.as_view(actions)(request, **kwargs)
    return as_json(response.data)


@pytest.mark.parametrize("count", [2, 10])
@override_settings(REST_FRAMEWORK={"PAGE_SIZE": 20})
def test_views_list_and_retrieve_partial_plans_in_constant_queries(count):
    gadgets = make_gadgets(count)
    listed, queries = count_queries(lambda: call(PartialViewSet, "list"))
    assert listed == call(PlainViewSet, "list")
    assert queries == 3  # the page as execute() renders it (a short first page: no count)
    pk = gadgets[0].pk
    assert call(PartialViewSet, "retrieve", pk=pk) == call(PlainViewSet, "retrieve", pk=pk)


def test_the_cache_renders_partial_plans_by_pk():
    gadgets = make_gadgets(4)
    plan = compile_read_plan(PartialGadgetSerializer)
    pks = [gadgets[1].pk, gadgets[2].pk]
    found = plan.render_by_pk(annotated(), pks, {})
    expected = json.loads(drf(PartialGadgetSerializer, annotated().filter(pk__in=pks)))
    assert [json.loads(as_json(found[pk])) for pk in sorted(pks, reverse=True)] == expected


class PartialWrites(ReadWriteSerializerMixin, viewsets.ModelViewSet):
    read_serializer_class = PartialGadgetSerializer
    write_serializer_class = fast.SpecSerializer  # any write serializer

    def get_queryset(self):
        return annotated()


def test_write_responses_render_partial_plans():
    gadget = make_gadgets(2)[0]
    view = PartialWrites()
    view.request, view.format_kwarg, view.action, view.kwargs = None, None, "update", {}
    written = SimpleNamespace(instance=gadget, data=None)
    expected = json.loads(drf(PartialGadgetSerializer, annotated().filter(pk=gadget.pk)))[0]
    assert json.loads(as_json(view.get_read_data(written))) == expected


def test_no_field_but_the_primary_key_compiled_is_drfs_path():
    plan = compile_read_plan(fast.FallbackSerializer)  # id, then four instance fields
    assert (plan.compiled, plan.coverage, plan.instance_fields) == (False, 0.0, ())
    assert len(plan.fallback_reasons) == 4
    full = compile_read_plan(fast.GadgetSerializer)
    assert (full.coverage, full.instance_fields) == (1.0, ())


# The serializer as the view builds it: its context, its arguments, its field set.


class DynamicFieldsGadgetSerializer(serializers.ModelSerializer):
    """A dynamic-fields base: ``?fields=id,name`` selects the fields in ``__init__``."""

    shout = serializers.ReadOnlyField()

    class Meta:
        model = Gadget
        fields = ["id", "name", "price", "maker", "shout"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        chosen = request.query_params.get("fields") if request is not None else None
        if chosen:
            for name in set(self.fields) - set(chosen.split(",")):
                self.fields.pop(name)


class PermissionAwareGadgetSerializer(serializers.ModelSerializer):
    """A permission-aware base: ``user=`` drops what the user may not see."""

    shout = serializers.ReadOnlyField()
    who = serializers.SerializerMethodField()

    class Meta:
        model = Gadget
        fields = ["id", "name", "price", "shout", "who"]

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if user is None or not user.is_staff:
            self.fields.pop("price")

    @batch("id")
    def get_who(self, rows: list[dict]) -> list[str]:
        return [self.user.username] * len(rows)


class DynamicFast(FastReadMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Gadget.objects.order_by("id")
    serializer_class = DynamicFieldsGadgetSerializer


class DynamicPlain(viewsets.ReadOnlyModelViewSet):
    queryset = Gadget.objects.order_by("id")
    serializer_class = DynamicFieldsGadgetSerializer


class ByUser:
    def get_serializer(self, *args, **kwargs):
        kwargs["user"] = self.request.user
        return super().get_serializer(*args, **kwargs)


class ByUserFast(ByUser, FastReadMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Gadget.objects.order_by("id")
    serializer_class = PermissionAwareGadgetSerializer


class ByUserPlain(ByUser, viewsets.ReadOnlyModelViewSet):
    queryset = Gadget.objects.order_by("id")
    serializer_class = PermissionAwareGadgetSerializer


def get(view_class, action, path="/gadgets/", user=None, **kwargs):
    request = APIRequestFactory().get(path)
    if user is not None:
        force_authenticate(request, user)
    return as_json(view_class.as_view({"get": action})(request, **kwargs).data)


def plans_of(serializer_class) -> dict:
    return {key[2]: plan for key, plan in fast_module._plans.items() if key[0] is serializer_class}


@pytest.mark.parametrize("count", [2, 10])
def test_a_dynamic_fields_serializer_compiles_per_field_set(count):
    gadgets = make_gadgets(count)
    fast_module._clear()
    path = "/gadgets/?fields=id,name"
    listed, queries = count_queries(lambda: get(DynamicFast, "list", path))
    assert listed == get(DynamicPlain, "list", path) and queries == 1
    assert list(json.loads(listed)[0]) == ["id", "name"]
    plan = plans_of(DynamicFieldsGadgetSerializer)[("id", "name")]
    assert (plan.coverage, plan.instance_fields) == (1.0, ())
    get(DynamicFast, "list", path)  # the plan cache: no second compilation
    assert plans_of(DynamicFieldsGadgetSerializer) == {("id", "name"): plan}
    whole, queries = count_queries(lambda: get(DynamicFast, "list"))
    assert whole == get(DynamicPlain, "list") and queries == 1  # the instances, rows read off
    assert plans_of(DynamicFieldsGadgetSerializer)[
        ("id", "name", "price", "maker", "shout")
    ].instance_fields == ("shout",)
    pk = gadgets[0].pk
    retrieved = get(DynamicFast, "retrieve", path, pk=pk)
    assert retrieved == get(DynamicPlain, "retrieve", path, pk=pk)


def test_a_user_argument_serializer_compiles_through_the_views_get_serializer(caplog):
    make_gadgets(3)
    fast_module._clear()
    staff = User.objects.create(username="staff", is_staff=True)
    alice = User.objects.create(username="alice")
    with caplog.at_level("WARNING", logger="drf_scale.fast"):
        for user in (staff, alice, staff, alice):
            for action, kwargs in (("list", {}), ("retrieve", {"pk": Gadget.objects.first().pk})):
                render = functools.partial(get, ByUserFast, action, user=user, **kwargs)
                fast_result, queries = count_queries(render)
                assert fast_result == get(ByUserPlain, action, user=user, **kwargs)
                assert queries == 1  # the instances, rows read off them
                rows = json.loads(fast_result)
                for row in rows if action == "list" else [rows]:
                    assert row["who"] == user.username  # the request's serializer's user
                    assert ("price" in row) is user.is_staff
    assert set(plans_of(PermissionAwareGadgetSerializer)) == {
        ("id", "name", "price", "shout", "who"),
        ("id", "name", "shout", "who"),
    }
    records = [r for r in caplog.records if r.name == "drf_scale.fast"]
    assert len(records) == 2  # once per field set
    assert all((r.levelname, r.exc_info) == ("WARNING", None) for r in records)


# to_representation overrides: compiled_postprocess, or DRF's path with the reason.


class ShapedMakerSerializer(fast.MakerSerializer):
    compiled_postprocess = "shape"

    def to_representation(self, instance):
        return self.shape(super().to_representation(instance))

    def shape(self, data: dict) -> dict:
        return {"maker": data["name"].upper(), **data}


class ShapedList(serializers.ListSerializer):
    compiled_postprocess = "shape"

    def to_representation(self, data):
        return self.shape(super().to_representation(data))

    def shape(self, data: list) -> list:
        return data[::-1]


class ShapedGadgetSerializer(serializers.ModelSerializer):
    compiled_postprocess = "shape"
    shout = serializers.ReadOnlyField()
    maker = ShapedMakerSerializer(read_only=True)

    class Meta:
        model = Gadget
        fields = ["id", "name", "price", "shout", "maker"]
        list_serializer_class = ShapedList

    def to_representation(self, instance):
        return self.shape(super().to_representation(instance))

    def shape(self, data: dict) -> dict:
        data.pop("price")
        return {"tag": self.context.get("tag", "-"), **data, "name": data["name"].lower()}


class UndeclaredList(serializers.ListSerializer):
    def to_representation(self, data):
        return super().to_representation(data)[::-1]


class UndeclaredListSerializer(serializers.ModelSerializer):
    class Meta:
        model = Gadget
        fields = ["id", "name"]
        list_serializer_class = UndeclaredList


@pytest.mark.parametrize("count", [2, 10])
def test_a_declared_postprocess_compiles(count):
    make_gadgets(count)
    plan = compile_read_plan(ShapedGadgetSerializer)
    assert (plan.compiled, plan.instance_fields, plan.shapes_lists) == (True, ("shout",), True)
    queryset, context = Gadget.objects.order_by("id"), {"tag": "t"}
    result, queries = count_queries(lambda: as_json(plan.execute(queryset, context)))
    assert result == drf(ShapedGadgetSerializer, queryset, context)
    assert queries == 1  # the instances with their makers joined
    assert list(json.loads(result)[-1]) == ["tag", "id", "name", "shout", "maker"]


class ShapedFast(FastReadMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Gadget.objects.order_by("id")
    serializer_class = ShapedGadgetSerializer


class ShapedPlain(viewsets.ReadOnlyModelViewSet):
    queryset = Gadget.objects.order_by("id")
    serializer_class = ShapedGadgetSerializer


def test_a_declared_postprocess_through_a_view():
    gadgets = make_gadgets(3)
    assert get(ShapedFast, "list") == get(ShapedPlain, "list")
    pk = gadgets[0].pk
    assert get(ShapedFast, "retrieve", pk=pk) == get(ShapedPlain, "retrieve", pk=pk)


def test_an_undeclared_override_falls_back_naming_it():
    make_gadgets(3)
    plan = compile_read_plan(fast.CustomRepresentationSerializer)
    assert not plan.compiled
    (reason,) = plan.fallback_reasons
    assert reason.startswith(
        "CustomRepresentationSerializer: its own to_representation() changes what DRF returns"
    )
    assert "compiled_postprocess" in reason


# A list serializer's own to_representation(): run on the page's instances, super() compiled.


class PickingList(serializers.ListSerializer):
    """Renders part of the page through super(): a filtered copy, reversed, or other rows."""

    def to_representation(self, data):
        self.context["seen"] = len(data)  # the context the fields read, as DRF's dict
        picked = [obj for obj in data if obj.pk % 2][::-1]
        others = list(Gadget.objects.filter(pk__in=[obj.pk for obj in data]).order_by("-pk")[:1])
        return [*super().to_representation(picked), *super().to_representation(others)]


class SeenSerializer(serializers.ModelSerializer):
    seen = serializers.SerializerMethodField()

    class Meta:
        model = Gadget
        fields = ["id", "name", "seen"]
        list_serializer_class = PickingList

    def get_seen(self, gadget: Gadget) -> int:
        return self.context["seen"]


@pytest.mark.parametrize("count", [3, 8])
def test_a_list_serializers_own_code_runs_around_the_plan(count):
    make_gadgets(count)
    for serializer in (UndeclaredListSerializer, SeenSerializer):
        queryset = Gadget.objects.order_by("id")
        plan = compile_read_plan(serializer)
        assert (plan.compiled, plan.shapes_lists, plan.pages_instances) == (True, True, True)
        assert not [reason for reason in plan.fallback_reasons if "[]" in reason]
        result, queries = count_queries(lambda p=plan, q=queryset: as_json(p.execute(q, {})))
        assert result == drf(serializer, queryset, {})
        # The page; SeenSerializer's own query; the object it found renders through DRF.
        assert queries == (1 if serializer is UndeclaredListSerializer else 2)
    assert json.loads(result)[0]["seen"] == count


def test_a_list_serializers_own_code_needs_a_writable_context():
    make_gadgets(2)
    plan = compile_read_plan(SeenSerializer)
    with pytest.raises(TypeError):  # a read-only mapping given as the context
        plan.execute(Gadget.objects.all(), MappingProxyType({}))


def test_a_nested_override_without_postprocess_is_an_instance_field():
    class Unshaped(fast.MakerSerializer):
        def to_representation(self, instance):
            return {"only": instance.name}

    class WithUnshaped(serializers.ModelSerializer):
        maker = Unshaped(read_only=True)

        class Meta:
            model = Gadget
            fields = ["id", "name", "maker"]

    make_gadgets(4)
    plan = compile_read_plan(WithUnshaped)
    assert plan.instance_fields == ("maker",)
    assert "WithUnshaped.maker: Unshaped — Unshaped.to_representation()" in plan.fallback_reasons[0]
    queryset = Gadget.objects.order_by("id")
    assert as_json(plan.execute(queryset)) == drf(WithUnshaped, queryset)


class ContextFromQueryset:
    """paperless-ngx's shape: the serializer context reads the view's queryset."""

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["visible"] = self.get_queryset().count() if self.action == "list" else None
        return context


class ContextFast(ContextFromQueryset, OptimizedQuerysetMixin, DynamicFast):
    pass


class ContextPlain(ContextFromQueryset, DynamicPlain):
    pass


def test_a_context_that_reads_the_queryset_compiles_without_recursion():
    make_gadgets(3)
    path = "/gadgets/?fields=id,name"
    assert get(ContextFast, "list", path) == get(ContextPlain, "list", path)
    assert get(ContextFast, "list") == get(ContextPlain, "list")


def test_partial_plans_can_be_switched_off(settings):
    settings.DRF_SCALE = {**settings.DRF_SCALE, "PARTIAL_COMPILATION": False}
    plan = compile_read_plan(PartialGadgetSerializer)
    assert (plan.compiled, plan.coverage, plan.instance_fields) == (False, 0.0, ())
    assert len(plan.fallback_reasons) == len(INSTANCE)  # each field that does not compile
    assert plan.describe() == "PartialGadgetSerializer renders through DRF, not its compiled plan"


class CountingContext:
    """A context that costs queries, as paperless-ngx's does: built once per read."""

    contexts = 0

    def get_serializer_context(self):
        CountingContext.contexts += 1
        return super().get_serializer_context()


class CountedFast(CountingContext, DynamicFast):
    pass


class CountedPlain(CountingContext, DynamicPlain):
    pass


@pytest.mark.parametrize("action", ["list", "retrieve"])
def test_a_read_builds_the_serializer_context_once(action):
    gadget = make_gadgets(2)[0]
    kwargs = {"pk": gadget.pk} if action == "retrieve" else {}
    CountingContext.contexts = 0
    fast = get(CountedFast, action, "/gadgets/?fields=id,name", **kwargs)
    assert CountingContext.contexts == 1
    assert fast == get(CountedPlain, action, "/gadgets/?fields=id,name", **kwargs)


class ViewerList(serializers.ListSerializer):
    """Keeps the request's user from its __init__, as a list serializer of one's own may."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        self.viewer = getattr(getattr(request, "user", None), "username", None)

    def to_representation(self, data):
        return [dict(item, viewer=self.viewer) for item in super().to_representation(data)]


class ViewerGadgetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Gadget
        fields = ["id", "name"]
        list_serializer_class = ViewerList


def test_a_list_serializer_keeping_request_state_is_built_per_request():
    make_gadgets(2)
    user = User.objects.create(username="alice")
    assert "__init__" in compile_read_plan(ViewerGadgetSerializer).fallback_reasons[0]
    bodies = []
    for compiled in (False, True):
        view = type("V", (FastReadMixin, viewsets.ReadOnlyModelViewSet), {
            "queryset": Gadget.objects.order_by("id"), "serializer_class": ViewerGadgetSerializer,
            "fast_reads": compiled,
        })  # fmt: skip
        request = APIRequestFactory().get("/g/")
        force_authenticate(request, user=user)
        response = view.as_view({"get": "list"})(request)
        response.render()
        bodies.append(json.loads(response.content))
    assert bodies[1] == bodies[0]
    assert {item["viewer"] for item in bodies[0]} == {"alice"}
