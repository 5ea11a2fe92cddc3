"""Compiled read plans: DRF's output as JSON, in a fixed number of queries, or DRF itself."""

import json

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIRequestFactory

from drf_scale.checks import check_read_paths
from drf_scale.fast import batch, compile_read_plan
from drf_scale.planner import optimize
from shop import api_serializers
from shop import serializers as naive_serializers
from shop.models import Product
from tests import checks_urls
from tests.factories import make_catalog
from tests.fastapp import serializers as fast
from tests.fastapp.data import make_gadgets
from tests.fastapp.models import Gadget, Label

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


def test_fallback_names_every_field_it_cannot_compile():
    plan = compile_read_plan(fast.FallbackSerializer)
    assert not plan.compiled
    reasons = "\n".join(plan.fallback_reasons)
    assert len(plan.fallback_reasons) == 4
    for field in ("shout", "both", "maker_text", "method"):
        assert f"FallbackSerializer.{field}:" in reasons
    assert "get_method() has no @batch hint" in reasons


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
        "ProductSerializer.review_count: get_review_count() has no @batch hint",
        "ProductSerializer.rating_avg: get_rating_avg() has no @batch hint",
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
    plan = compile_read_plan(MethodAwareGadgetSerializer)
    assert plan.fallback_reasons == ("MethodAwareGadgetSerializer: overrides __init__()",)
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []


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
        "Wrong.initial: @batch column 'gadgets__name' is not a column",
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
        "UnbatchedSerializer.shout: get_shout() has no @batch hint"
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
        "ByUserFast renders ShoutingSerializer through DRF, not its compiled plan: "
        f"{reasons[0]}; {reasons[1]}."
    )
    uninspected = messages["drf_scale.W033", "ByPkFast"].msg
    assert uninspected.startswith("Check W032 could not inspect tests.checks_urls.ByPkFast: ")
    assert "raised KeyError: 'pk' for a GET list and retrieve request" in uninspected
