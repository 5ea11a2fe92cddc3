"""ReadWriteSerializerMixin and FastReadMixin on views: DRF's behaviour, through compiled reads."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import filters, generics, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from drf_scale.mixins import FastReadMixin, OptimizedQuerysetMixin, ReadWriteSerializerMixin
from drf_scale.pagination import KeysetPagination
from tests.fastapp import serializers as fast
from tests.fastapp.data import make_gadgets
from tests.fastapp.models import Gadget, Maker

pytestmark = pytest.mark.django_db
factory = APIRequestFactory()


class GadgetWriteSerializer(serializers.ModelSerializer):
    instances = 0

    class Meta:
        model = Gadget
        fields = ["name", "rank", "maker"]

    def __init__(self, *args, **kwargs):
        GadgetWriteSerializer.instances += 1
        super().__init__(*args, **kwargs)

    def validate_rank(self, value):
        if value is not None and value < 0:
            raise serializers.ValidationError("Must not be negative.")
        return value


class GadgetRenamePartial(GadgetWriteSerializer):
    class Meta(GadgetWriteSerializer.Meta):
        fields = ["name"]


class Paginated(PageNumberPagination):
    page_size = 3
    page_size_query_param = "page_size"


class DRFGadgets(OptimizedQuerysetMixin, viewsets.ModelViewSet):
    """The reference: DRF's own path, with the planner."""

    queryset = Gadget.objects.all()
    serializer_class = fast.GadgetSerializer
    pagination_class = Paginated
    filter_backends = [filters.SearchFilter, filters.OrderingFilter]
    search_fields = ["name"]
    ordering_fields = ["rank", "seen_at"]
    ordering = ["-id"]
    permission_classes = [permissions.AllowAny]

    @action(detail=False, methods=["get", "post"], serializer_class=fast.CountrySerializer)
    def custom(self, request):
        return Response(self.get_serializer_class().__name__)


class FastGadgets(FastReadMixin, ReadWriteSerializerMixin, DRFGadgets):
    read_serializer_class = fast.GadgetCoreSerializer
    read_serializer_classes = {"retrieve": fast.GadgetSerializer, "list": fast.GadgetSerializer}
    write_serializer_class = GadgetWriteSerializer
    write_serializer_classes = {"partial_update": GadgetRenamePartial}


class GadgetList(ReadWriteSerializerMixin, generics.ListCreateAPIView):
    queryset = Gadget.objects.all()
    read_serializer_class = fast.GadgetCoreSerializer
    write_serializer_class = GadgetWriteSerializer
    permission_classes = [permissions.AllowAny]


def call(view_class, method: str, path: str = "/gadgets/", data=None, **kwargs):
    actions = {
        "get": "retrieve" if "pk" in kwargs else "list",
        "post": "create",
        "put": "update",
        "patch": "partial_update",
    }
    if issubclass(view_class, viewsets.ViewSetMixin):
        view = view_class.as_view({method: actions[method]})
    else:
        view = view_class.as_view()
    request = getattr(factory, method)(path, data, format="json")
    response = view(request, **kwargs)
    response.render()
    return response.status_code, json.loads(response.content) if response.content else None


def serializer_for(view_class, action_name: str | None, method: str):
    view = view_class()
    view.action = action_name
    view.request = getattr(factory, method)("/")
    view.format_kwarg = None
    return view.get_serializer_class()


# Choosing the serializer.


@pytest.mark.parametrize(
    ("action_name", "method", "expected"),
    [
        ("list", "get", fast.GadgetSerializer),
        ("retrieve", "get", fast.GadgetSerializer),
        ("create", "post", GadgetWriteSerializer),
        ("update", "put", GadgetWriteSerializer),
        ("partial_update", "patch", GadgetRenamePartial),
        ("destroy", "delete", fast.GadgetSerializer),  # the view's own serializer_class
        ("custom", "get", fast.GadgetSerializer),
        ("custom", "post", fast.GadgetSerializer),
        (None, "get", fast.GadgetCoreSerializer),  # a view without actions
        ("metadata", "post", GadgetWriteSerializer),  # OPTIONS describing the POST form
    ],
)
def test_the_serializer_of_each_action(action_name, method, expected):
    assert serializer_for(FastGadgets, action_name, method) is expected


def test_custom_actions_keep_their_own_serializer(db):
    view = FastGadgets.as_view({"get": "custom", "post": "custom"}, **FastGadgets.custom.kwargs)
    for method in ("get", "post"):
        response = view(getattr(factory, method)("/gadgets/custom/"))
        assert response.data == "CountrySerializer"


def test_views_without_actions_read_and_write_by_method():
    assert serializer_for(GadgetList, None, "get") is fast.GadgetCoreSerializer
    assert serializer_for(GadgetList, None, "post") is GadgetWriteSerializer


# Writes answer with the read representation; reads never build the write serializer.


def test_create_validates_with_the_write_serializer_and_answers_a_read():
    make_gadgets(2)
    maker = Maker.objects.get(name="Acme")
    status, body = call(FastGadgets, "post", data={"name": "New", "rank": 4, "maker": maker.id})
    assert status == 201
    _, read = call(FastGadgets, "get", pk=body["id"])
    assert body == read
    assert body["maker_detail"]["name"] == "Acme" and body["part_count"] == 0
    assert call(FastGadgets, "post", data={"name": "Bad", "rank": -1}) == (
        400,
        {"rank": ["Must not be negative."]},
    )


def test_updates_answer_a_read():
    (gadget, *_) = make_gadgets(2)
    status, body = call(FastGadgets, "put", data={"name": "Put", "rank": 1}, pk=gadget.pk)
    assert status == 200 and body["name"] == "Put" and body["maker_name"] == "Acme"
    assert body["summary"] == "Acme#1/3"  # reads the annotation of the read serializer
    status, body = call(FastGadgets, "patch", data={"name": "Patched", "rank": -5}, pk=gadget.pk)
    assert status == 200 and (body["name"], body["rank"]) == ("Patched", 1)


def test_a_generic_create_view_answers_with_its_read_serializer():
    status, body = call(GadgetList, "post", data={"name": "Plain"})
    assert status == 201 and set(body) == set(fast.GadgetCoreSerializer.Meta.fields)


def test_reads_never_build_the_write_serializer():
    (gadget, *_) = make_gadgets(2)
    before = GadgetWriteSerializer.instances
    call(FastGadgets, "get")
    call(FastGadgets, "get", pk=gadget.pk)
    call(GadgetList, "get")
    assert GadgetWriteSerializer.instances == before


# Lists and details: the JSON of DRF's path, through the plan.


@pytest.mark.parametrize(
    "query",
    ["", "?page=2", "?page_size=2&page=3", "?search=1", "?ordering=rank", "?ordering=-seen_at"],
)
def test_lists_are_drfs(query):
    make_gadgets(8)
    assert call(FastGadgets, "get", f"/gadgets/{query}") == call(
        DRFGadgets, "get", f"/gadgets/{query}"
    )


def test_list_queries_do_not_grow_with_the_page():
    make_gadgets(8)
    counts = []
    for size in (2, 8):
        with CaptureQueriesContext(connection) as captured:
            call(FastGadgets, "get", f"/gadgets/?page_size={size}")
        counts.append(len(captured))
    assert counts == [9, 9]  # the count, then the plan's 8
    assert "JOIN" not in captured[0]["sql"]  # the count needs no joins nor annotations


def test_details_and_404s_are_drfs():
    (gadget, *_) = make_gadgets(2)
    for pk in (gadget.pk, 999999, "abc"):
        assert call(FastGadgets, "get", pk=pk) == call(DRFGadgets, "get", pk=pk)
    assert call(FastGadgets, "get", pk=999999) == (
        404,
        {"detail": "No Gadget matches the given query."},
    )


class OnlyActive(permissions.BasePermission):
    seen: list[object] = []

    def has_object_permission(self, request, view, obj):
        OnlyActive.seen.append(obj)
        return obj.active


def test_object_permissions_get_instances():
    full, empty = make_gadgets(2)
    view_class = type("Guarded", (FastGadgets,), {"permission_classes": [OnlyActive]})
    assert call(view_class, "get", pk=full.pk)[0] == 200
    assert call(view_class, "get", pk=empty.pk)[0] == 401
    assert [type(obj) for obj in OnlyActive.seen] == [Gadget, Gadget]


def test_a_serializer_that_does_not_compile_is_served_by_drf():
    make_gadgets(3)
    view_class = type("Falling", (FastGadgets,), {"read_serializer_classes": {}})
    view_class.read_serializer_class = fast.FallbackSerializer
    reference = type("Reference", (DRFGadgets,), {"serializer_class": fast.FallbackSerializer})
    assert call(view_class, "get") == call(reference, "get")


class ByRank(CursorPagination):
    ordering = "rank"
    page_size = 2


class Keyset(KeysetPagination):
    page_size = 2


@pytest.mark.parametrize("paginator", [ByRank, Keyset, None])
def test_cursor_paginators_and_no_pagination_are_drfs(paginator):
    make_gadgets(7)
    fast_view = type("Fast", (FastGadgets,), {"pagination_class": paginator, "ordering": None})
    drf_view = type("DRF", (DRFGadgets,), {"pagination_class": paginator, "ordering": None})
    path = "/gadgets/"
    for _ in range(4):
        fast_page, drf_page = call(fast_view, "get", path), call(drf_view, "get", path)
        assert fast_page == drf_page
        if paginator is None or not drf_page[1]["next"]:
            break
        path = drf_page[1]["next"].removeprefix("http://testserver")


def test_the_api_describes_its_write_serializer_and_answers_reads(staff_client, catalog):
    described = staff_client.options("/api/products/").json()["actions"]["POST"]
    assert "stock" in described and "review_count" not in described
    product = catalog["products"][1]
    patched = staff_client.patch(f"/api/products/{product.id}/", {"stock": 7}, format="json")
    assert patched.json() == staff_client.get(f"/api/products/{product.id}/").json()
