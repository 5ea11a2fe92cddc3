"""Compiled read plans: DRF's output as JSON, in a fixed number of queries, or DRF itself."""

import json

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import reverse as rest_framework_reverse
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIRequestFactory
from rest_framework.versioning import QueryParameterVersioning

from drf_scale.checks import check_read_paths
from drf_scale.fast import batch, compile_read_plan
from drf_scale.planner import optimize
from shop import api_serializers
from shop import serializers as naive_serializers
from shop.models import Product
from tests import checks_urls
from tests.factories import make_catalog
from tests.fastapp import serializers as fast
from tests.fastapp.data import make_devices, make_gadgets
from tests.fastapp.models import Device, Gadget, Grant, Label

pytestmark = pytest.mark.django_db


def as_json(data) -> object:
    return json.loads(JSONRenderer().render(data))


def drf(serializer_class, queryset, context=None) -> object:
    """What DRF renders, with the planner loading declared prefetches and annotations."""
    queryset = optimize(queryset, serializer_class)
    return as_json(serializer_class(queryset, many=True, context=context or {}).data)


def compiled(serializer_class, queryset, context=None) -> object:
    plan = compile_read_plan(serializer_class)
    assert plan.compiled, plan.fallback_reasons
    return as_json(plan.execute(queryset, context))


def count_queries(function) -> tuple[object, int]:
    with CaptureQueriesContext(connection) as captured:
        result = function()
    return result, len(captured)


@pytest.mark.parametrize(
    "serializer_class",
    [fast.GadgetSerializer, fast.GadgetCoreSerializer, fast.MakerSerializer, fast.LabelSerializer],
)
def test_compiled_output_is_drfs(serializer_class):
    make_gadgets()
    model = serializer_class.Meta.model
    queryset = model.objects.order_by("-id")
    assert compiled(serializer_class, queryset) == drf(serializer_class, queryset)


def test_nulls_missing_relations_and_skipped_keys():
    make_gadgets(2)
    full, empty = compiled(fast.GadgetSerializer, Gadget.objects.order_by("id"))
    assert full["maker_name"] == "Acme" and "maker_name" not in empty  # DRF skips the key
    assert (full["maker_country"], empty["maker_country"]) == ("FR", None)
    assert full["maker_detail"] == {
        "id": full["maker"],
        "name": "Acme",
        "country": {"id": full["maker_detail"]["country"]["id"], "code": "FR"},
        "label": "Acme (FR)",
    }
    assert empty["maker_detail"] is None and empty["spec"] is None and empty["spec_id"] is None
    assert full["seen_at"] == "2026-01-01T23:30:00.123456Z" and full["price"] == "12.345"
    assert full["price_rounded"] == 12.3 and full["lasts"] == "00:00:00.000007"
    assert [p["position"] for p in full["parts"]] == [-2, -1, 0]  # Meta.ordering
    assert [p["position"] for p in full["top_parts"]] == [0, -1]  # the declared slice
    assert full["parts"][0]["labels"] == ["gamma"] and empty["parts"] == []
    assert full["part_count"] == 3 and full["summary"] == "Acme#0/3"


def test_query_count_is_fixed_whatever_the_row_count():
    make_gadgets(8)
    plan = compile_read_plan(fast.GadgetSerializer)
    one, queries_one = count_queries(lambda: plan.execute(Gadget.objects.order_by("id")[:1]))
    all_, queries_all = count_queries(lambda: plan.execute(Gadget.objects.order_by("id")))
    assert (len(one), len(all_)) == (1, 8)
    # rows, labels, label_slugs, parts and their labels, top_parts and their labels, whole.labels
    assert queries_one == queries_all == 8


def test_empty_queryset_runs_one_query():
    plan = compile_read_plan(fast.GadgetSerializer)
    assert count_queries(lambda: plan.execute(Gadget.objects.all())) == ([], 1)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/New_York"])
def test_datetimes_follow_the_current_time_zone(zone):
    make_gadgets(2)
    queryset = Gadget.objects.order_by("id")
    with timezone.override(zone):
        assert compiled(fast.GadgetSerializer, queryset) == drf(fast.GadgetSerializer, queryset)


@pytest.mark.parametrize(
    "rest_framework",
    [
        {"COERCE_DECIMAL_TO_STRING": False},
        {"DATETIME_FORMAT": "%d %b %Y %H:%M:%S.%f", "DATE_FORMAT": None, "TIME_FORMAT": "%H%M"},
        {"COERCE_BIGINT_TO_STRING": True},
    ],
)
def test_output_settings_are_compiled_in_and_recompiled_on_change(rest_framework):
    make_gadgets(2)
    queryset = Gadget.objects.order_by("id")
    with override_settings(REST_FRAMEWORK=rest_framework):
        assert compiled(fast.GadgetSerializer, queryset) == drf(fast.GadgetSerializer, queryset)


def test_the_contract_serializers_compile_and_render_as_drf():
    make_catalog(products=7, reviews_per_product=6)
    queryset = Product.objects.order_by("-created_at", "-id")
    for serializer_class in (
        api_serializers.ProductSerializer,
        api_serializers.ProductDetailSerializer,
    ):
        assert compiled(serializer_class, queryset) == drf(serializer_class, queryset)
    naive = drf(naive_serializers.ProductDetailSerializer, queryset)
    assert compiled(api_serializers.ProductDetailSerializer, queryset) == naive
    plan = compile_read_plan(api_serializers.ProductDetailSerializer)
    _, queries = count_queries(lambda: plan.execute(queryset))
    assert queries == 3  # rows with review stats, tags, latest reviews with their users


def test_context_reaches_custom_fields_and_batches():
    make_gadgets(1)
    request = APIRequestFactory().get("/somewhere/")
    context = {"request": request, "who": "alice"}
    queryset = Gadget.objects.all()
    result = compiled(fast.ContextSerializer, queryset, context)
    assert result == drf(fast.ContextSerializer, queryset, context)
    assert result[0]["name"] == "Gadget 0@/somewhere/" and result[0]["who"] == "alice"
    assert compiled(fast.ContextSerializer, queryset)[0]["who"] == "nobody"


# The fallback: DRF's path, with the reasons named.


def test_fallback_names_every_field_it_cannot_compile_and_why():
    """Each blocker at once: its path, its field class, and what the user can change."""
    plan = compile_read_plan(fast.FallbackSerializer)
    assert not plan.compiled
    assert plan.fallback_reasons == (
        "FallbackSerializer.shout: ReadOnlyField — Gadget.shout is a property or method, which "
        "needs the instance; declare it as an annotation with @requires(annotate=...)",
        "FallbackSerializer.both: InstanceField — source='*' hands the whole instance to "
        "InstanceField.to_representation()",
        "FallbackSerializer.maker_text: StringRelatedField — it renders the related Maker "
        "instance of Gadget.maker; use a nested serializer, a PrimaryKeyRelatedField or a "
        "SlugRelatedField",
        "FallbackSerializer.method: SerializerMethodField — get_method() runs once per "
        "instance; decorate it with @drf_scale.fast.batch(columns...)",
    )


def test_a_field_that_raises_while_compiling_is_one_reason_among_the_others():
    class Exploding(serializers.CharField):
        @property
        def source_attrs(self):
            raise RuntimeError("boom")

        @source_attrs.setter
        def source_attrs(self, value):
            pass

    class Blocked(serializers.ModelSerializer):
        boom = Exploding(source="name")
        shout = serializers.ReadOnlyField()

        class Meta:
            model = Gadget
            fields = ["id", "boom", "shout"]

    reasons = compile_read_plan(Blocked).fallback_reasons
    assert reasons[0] == "Blocked.boom: Exploding — compiling it raised RuntimeError('boom')"
    assert reasons[1].startswith("Blocked.shout: ReadOnlyField — Gadget.shout is a property")
    assert len(reasons) == 2


def test_fallback_renders_through_drf():
    make_gadgets(3)
    queryset = Gadget.objects.order_by("id")
    for serializer_class in (fast.FallbackSerializer, fast.CustomRepresentationSerializer):
        plan = compile_read_plan(serializer_class)
        assert plan.fallback_reasons
        assert as_json(plan.execute(queryset)) == drf(serializer_class, queryset)
        with pytest.raises(ValueError, match="renders through DRF"):
            plan.rows(queryset)


def test_the_naive_serializer_falls_back_on_its_method_fields():
    reasons = compile_read_plan(naive_serializers.ProductSerializer).fallback_reasons
    assert reasons == (
        "ProductSerializer.review_count: SerializerMethodField — get_review_count() runs once "
        "per instance; decorate it with @drf_scale.fast.batch(columns...)",
        "ProductSerializer.rating_avg: SerializerMethodField — get_rating_avg() runs once per "
        "instance; decorate it with @drf_scale.fast.batch(columns...)",
    )


class MethodAwareGadgetSerializer(serializers.ModelSerializer):
    """A shape of real applications: __init__ reads the request to pick its fields."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.context["request"].method != "GET":
            self.fields.pop("name")

    class Meta:
        model = Gadget
        fields = ["id", "name"]


def test_an_init_override_falls_back_without_building_one_and_without_an_error(caplog):
    """Building it without a request would raise: the override is found on the class."""
    compile_read_plan.cache_clear()
    with caplog.at_level("WARNING", logger="drf_scale.fast"):
        plan = compile_read_plan(MethodAwareGadgetSerializer)
        compile_read_plan(MethodAwareGadgetSerializer)
    assert plan.fallback_reasons == (
        "MethodAwareGadgetSerializer: its own __init__() may shape the fields per request, so "
        "it is not built outside one; choose the serializer class per request in the view's "
        "get_serializer_class() to compile it",
    )
    (record,) = caplog.records  # once per class, a warning without a traceback
    assert (record.levelname, record.exc_info) == ("WARNING", None)
    assert plan.fallback_reasons[0] in record.getMessage()


class RequestReadingField(serializers.CharField):
    """A field whose construction reads the request: building the serializer raises."""

    def bind(self, field_name, parent):
        super().bind(field_name, parent)
        self.path = self.context["request"].path


class RequestReadingSerializer(serializers.ModelSerializer):
    name = RequestReadingField()

    class Meta:
        model = Gadget
        fields = ["id", "name"]


def test_a_serializer_that_needs_a_request_to_build_is_one_warning_per_class(caplog):
    make_gadgets(2)
    compile_read_plan.cache_clear()
    request = APIRequestFactory().get("/here/")
    with caplog.at_level("WARNING", logger="drf_scale.fast"):
        for _ in range(3):  # three requests
            plan = compile_read_plan(RequestReadingSerializer)
            rows = plan.execute(Gadget.objects.order_by("id"), {"request": request})
    assert [row["name"] for row in rows] == ["Gadget 0", "Gadget 1"]
    assert plan.fallback_reasons == (
        "RequestReadingSerializer: building it outside a request raised KeyError: 'request'; "
        "read the request with self.context.get('request') (None while compiling)",
    )
    # The planner's own log of the class (planner.py) is not the compiler's.
    (record,) = [r for r in caplog.records if r.name == "drf_scale.fast"]
    assert (record.levelname, record.exc_info) == ("WARNING", None)


def test_a_serializer_without_a_model_falls_back():
    plan = compile_read_plan(naive_serializers.OrderSerializer)
    assert plan.fallback_reasons == ("OrderSerializer: no Meta.model to read rows of",)


# @batch


class BatchCounting(serializers.ModelSerializer):
    calls: list[int] = []
    initial = serializers.SerializerMethodField()

    class Meta:
        model = Label
        fields = ["id", "initial"]

    @batch("slug")
    def get_initial(self, rows: list[dict]) -> list[str]:
        BatchCounting.calls.append(len(rows))
        return [row["slug"][0] for row in rows]


def test_a_batch_runs_once_per_render_and_per_instance_on_drfs_path():
    make_gadgets(1)
    BatchCounting.calls = []
    assert compiled(BatchCounting, Label.objects.order_by("slug")) == [
        {"id": label.id, "initial": label.slug[0]} for label in Label.objects.order_by("slug")
    ]
    assert BatchCounting.calls == [3]
    BatchCounting(Label.objects.all(), many=True).data  # noqa: B018
    assert BatchCounting.calls == [3, 1, 1, 1]


def test_a_batch_returning_the_wrong_number_of_values_is_an_error():
    class Short(BatchCounting):
        @batch("slug")
        def get_initial(self, rows: list[dict]) -> list[str]:
            return []

    make_gadgets(1)
    with pytest.raises(ValueError, match=r"Short.initial returned 0 values for 3 rows"):
        compile_read_plan(Short).execute(Label.objects.all())


def test_a_batch_column_must_be_a_column():
    class Wrong(BatchCounting):
        @batch("gadgets__name")
        def get_initial(self, rows: list[dict]) -> list[str]:
            return []

    assert compile_read_plan(Wrong).fallback_reasons == (
        "Wrong.initial: SerializerMethodField — @batch column 'gadgets__name' of "
        "get_initial() is no column, to-one path or declared annotation",
    )


def test_rows_carry_extra_columns_for_paginators():
    make_gadgets(1)
    plan = compile_read_plan(fast.MakerSerializer)
    (row, *_) = plan.rows(fast.Maker.objects.order_by("id"), ["country_id"])
    assert set(row) == {"id", "name", "country", "country__code", "country_id"}


def test_compiled_once_per_class():
    assert compile_read_plan(fast.GadgetSerializer) is compile_read_plan(fast.GadgetSerializer)


# The settings switch and the system checks.


def test_fast_reads_can_be_switched_off():
    make_gadgets(2)
    queryset = Gadget.objects.order_by("id")
    with override_settings(DRF_SCALE={"FAST_READS": False}):
        plan = compile_read_plan(fast.GadgetSerializer)
        assert plan.fallback_reasons == ("GadgetSerializer: DRF_SCALE['FAST_READS'] is False",)
        assert as_json(plan.execute(queryset)) == drf(fast.GadgetSerializer, queryset)
    assert compile_read_plan(fast.GadgetSerializer).compiled


@override_settings(ROOT_URLCONF="tests.fastapp.urls")
def test_read_path_checks():
    messages = {(m.id, m.obj.__name__): m.msg for m in check_read_paths()}
    assert set(messages) == {
        ("drf_scale.W030", "NestedAllGadgets"),
        ("drf_scale.W031", "IntrospectedGadgets"),
        ("drf_scale.W032", "FallingGadgets"),
    }
    assert messages["drf_scale.W030", "NestedAllGadgets"].startswith("EveryMakerField declares")
    assert (
        "UnbatchedSerializer.shout: SerializerMethodField — get_shout() runs once per instance"
        in (messages["drf_scale.W032", "FallingGadgets"])
    )
    assert "DRF rebuilds its fields" in messages["drf_scale.W031", "IntrospectedGadgets"]


def test_the_reference_service_passes_the_read_path_checks():
    assert check_read_paths() == []


@override_settings(ROOT_URLCONF="tests.checks_urls")
def test_read_path_checks_build_a_request_for_get_serializer_class():
    messages = {(m.id, m.obj.__name__): m for m in check_read_paths()}
    assert set(messages) == {
        ("drf_scale.W032", "ByUserFast"),  # ShoutingSerializer, without ?full
        ("drf_scale.W033", "ByPkFast"),
        ("drf_scale.W031", "ByUserPlanned"),
        ("drf_scale.W033", "ByPkPlanned"),
    }
    reasons = compile_read_plan(checks_urls.ShoutingSerializer).fallback_reasons
    assert len(reasons) == 2  # shout and whisper: W032 names both
    assert messages["drf_scale.W032", "ByUserFast"].msg == (
        "ByUserFast: ShoutingSerializer renders through DRF, not its compiled plan: "
        f"{reasons[0]}; {reasons[1]}."
    )
    uninspected = messages["drf_scale.W033", "ByPkFast"].msg
    assert uninspected.startswith("Check W032 could not inspect tests.checks_urls.ByPkFast: ")
    assert "raised KeyError: 'pk' for a GET list and retrieve request" in uninspected


# Hyperlinks, files, model fields DRF has no field for, per-user batches.

LINKS = override_settings(
    ROOT_URLCONF="tests.fastapp.link_urls", MEDIA_URL="/media/", ALLOWED_HOSTS=["*"]
)


def link_contexts() -> dict[str, dict]:
    factory = APIRequestFactory()
    versioned = factory.get("/devices/")
    versioned.versioning_scheme = QueryParameterVersioning()
    versioned.version = "v2"
    return {
        "request": {"request": factory.get("/devices/")},
        "no request": {"request": None},
        "https host": {"request": factory.get("/devices/", secure=True, HTTP_HOST="api.test")},
        "format": {"request": factory.get("/devices/"), "format": "json"},
        "format override": {"request": factory.get("/devices/", {"format": "api"})},
        "versioning": {"request": versioned},
    }


@LINKS
@pytest.mark.parametrize("case", list(link_contexts()))
@pytest.mark.parametrize(
    "serializer_class", [fast.DeviceSerializer, fast.NamespacedDeviceSerializer]
)
def test_links_files_and_model_fields_compile_to_drfs_json(serializer_class, case):
    make_devices()
    context = link_contexts()[case]
    queryset = Device.objects.order_by("id")
    result = compiled(serializer_class, queryset, context)
    assert result == drf(serializer_class, queryset, context)
    assert json.dumps(result) == json.dumps(drf(serializer_class, queryset, context))


@LINKS
def test_compiled_links_files_and_model_fields():
    make_devices(4)
    request = APIRequestFactory().get("/devices/")
    first, second, third, _ = compiled(
        fast.DeviceSerializer, Device.objects.order_by("id"), {"request": request}
    )
    pk = first["id"]
    assert first["url"] == f"http://testserver/devices/{pk}/"
    assert first["gadget"].startswith("http://testserver/gadgets/")
    assert first["gadget_by_name"] == "http://testserver/gadgets/by-name/Gadget%200/"
    assert second["gadget"] is None and second["gadget_by_name"] is None  # a null key
    assert second["labels"] == ["http://testserver/labels/alpha/"]
    assert third["labels"] == [
        "http://testserver/labels/%C3%A7a-va/",  # Label.Meta.ordering: "-slug"
        "http://testserver/labels/alpha/",
    ]
    assert (first["mac"], second["mac"], first["cents"]) == ("aa-bb-cc-dd-ee-00", None, -150)
    assert first["manual"] == "http://testserver/media/manuals/na%C3%AFve%20guide%200.pdf"
    assert (second["manual"], second["photo"]) == (None, None)
    assert first["photo"] == "http://testserver/media/photos/p%20%C3%B8.png"
    relative = compiled(fast.DeviceSerializer, Device.objects.order_by("id"), {"request": None})
    assert relative[0]["url"] == f"/devices/{pk}/"
    assert relative[0]["manual"] == "/media/manuals/na%C3%AFve%20guide%200.pdf"


@LINKS
@override_settings(REST_FRAMEWORK={"UPLOADED_FILES_USE_URL": False})
def test_files_without_urls_are_their_names():
    make_devices(2)
    queryset = Device.objects.order_by("id")
    context = {"request": None}
    result = compiled(fast.DeviceSerializer, queryset, context)
    assert result == drf(fast.DeviceSerializer, queryset, context)
    assert [row["manual"] for row in result] == ["manuals/naïve guide 0.pdf", None]


@LINKS
def test_links_need_a_request_in_the_context_as_in_drf():
    make_devices(1)
    queryset = Device.objects.all()
    with pytest.raises(AssertionError, match="requires the request in the serializer context"):
        drf(fast.NamespacedDeviceSerializer, queryset)
    with pytest.raises(AssertionError, match="requires the request in the serializer context"):
        compiled(fast.NamespacedDeviceSerializer, queryset)


@LINKS
def test_integer_links_reverse_once_per_render_whatever_the_row_count(monkeypatch):
    reversed_names: list[str] = []
    original = rest_framework_reverse.django_reverse

    def counting(viewname, *args, **kwargs):
        reversed_names.append(viewname)
        return original(viewname, *args, **kwargs)

    monkeypatch.setattr(rest_framework_reverse, "django_reverse", counting)
    make_devices(10)
    plan = compile_read_plan(fast.NamespacedDeviceSerializer)
    context = {"request": APIRequestFactory().get("/")}
    counts = []
    for size in (2, 10):
        reversed_names.clear()
        plan.execute(Device.objects.order_by("id")[:size], context)
        counts.append(len(reversed_names))
    assert counts == [4, 4]  # two placeholder keys per link field


def test_a_link_field_with_its_own_get_url_is_named():
    class NestedLink(serializers.HyperlinkedIdentityField):
        def get_url(self, obj, view_name, request, format):
            return f"/gadgets/{obj.maker_id}/devices/{obj.pk}/"

    class NestedLinks(serializers.ModelSerializer):
        url = NestedLink(view_name="device-detail")

        class Meta:
            model = Gadget
            fields = ["url", "id"]

    assert compile_read_plan(NestedLinks).fallback_reasons == (
        "NestedLinks.url: NestedLink — NestedLink defines its own get_url(), which reads the "
        "instance",
    )


def test_a_model_field_drf_has_no_field_for_is_a_model_field_and_compiles():
    serializer = fast.DeviceSerializer(context={"request": None})
    assert type(serializer.fields["mac"]) is serializers.ModelField
    assert type(serializer.fields["cents"]) is serializers.ModelField
    assert compile_read_plan(fast.DeviceSerializer).compiled


@pytest.mark.parametrize("user_kind", ["granted", "superuser", "anonymous"])
def test_a_per_user_batch_field_reads_the_request_user_in_constant_queries(user_kind):
    """``self.context["request"].user`` in a @batch method: one grant query per page."""
    devices = make_devices(10)
    user = User.objects.create(username="u", is_superuser=user_kind == "superuser")
    for device in devices[::3]:
        Grant.objects.create(user=user, device=device)
    request = APIRequestFactory().get("/devices/")
    request.user = AnonymousUser() if user_kind == "anonymous" else user
    context = {"request": request}
    plan = compile_read_plan(fast.DevicePermissionSerializer)
    counts = []
    for size in (2, 10):
        queryset = Device.objects.order_by("id")[:size]
        result, queries = count_queries(lambda qs=queryset: as_json(plan.execute(qs, context)))
        assert result == drf(fast.DevicePermissionSerializer, queryset, context)
        counts.append(queries)
    expected = {"granted": [d.id in {g.id for g in devices[::3]} for d in devices]}
    assert [row["can_change"] for row in result] == expected.get(
        user_kind, [user_kind == "superuser"] * 10
    )
    assert counts == ([2, 2] if user_kind == "granted" else [1, 1])
