"""What differs between the Django and DRF versions we support, asserted on whichever runs.

Each test states the behaviour of every supported version, so the matrix (.ci/matrix.sh) checks
each one on its own interpreter: Django 6.0's non-concrete many-to-many fields, Django 6.1's
database-level on_delete and ``QuerySet.totally_ordered``, DRF 3.18's list errors and floats.
"""

import io
from collections import defaultdict

import pytest
import rest_framework
from django.core.exceptions import FieldError
from django.db import connection, models
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext, isolate_apps
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from drf_scale.cache import invalidation
from drf_scale.checks import check_database_on_delete
from drf_scale.fast import compile_read_plan
from drf_scale.pagination import resolve_ordering
from drf_scale.planner import optimize, plan_for
from drf_scale.renderers import ORJSONParser
from shop.models import Product
from tests.factories import make_catalog

DRF = tuple(int(part) for part in rest_framework.VERSION.split(".")[:2])


class TaggedProductSerializer(serializers.ModelSerializer):
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = Product
        fields = ["id", "name", "tags"]


def test_many_to_many_fields_are_planned_and_compiled_on_every_django():
    """Django 6.0 made ManyToManyField non-concrete; it is still a relation to prefetch."""
    assert "tags" in plan_for(TaggedProductSerializer).prefetch
    assert compile_read_plan(TaggedProductSerializer).fallback_reasons == ()


@pytest.fixture
def empty_registry(monkeypatch):
    """The invalidation registry as if no cached view existed, restored afterwards."""
    monkeypatch.setattr(invalidation.registry, "by_model", defaultdict(set))
    monkeypatch.setattr(invalidation.registry, "roots", set())
    monkeypatch.setattr(
        "drf_scale.checks._routed_view_classes", lambda: set()
    )  # the URLconf's cached views are not what this test is about
    return invalidation.registry


@pytest.mark.skipif(not hasattr(models, "DB_CASCADE"), reason="database on_delete: Django 6.1+")
@isolate_apps("tests.testapp")
def test_database_on_delete_under_a_cached_representation_is_refused(empty_registry):
    class Author(models.Model):
        name = models.CharField(max_length=20)

        class Meta:
            app_label = "testapp"

    class Note(models.Model):
        author = models.ForeignKey(Author, on_delete=models.DB_CASCADE)
        text = models.CharField(max_length=20)

        class Meta:
            app_label = "testapp"

    class NoteSerializer(serializers.ModelSerializer):
        class Meta:
            model = Note
            fields = ["id", "text"]

    empty_registry.register(NoteSerializer)
    [error] = check_database_on_delete()
    assert error.id == "drf_scale.E041"
    assert error.msg.startswith("Note.author has on_delete=DB_CASCADE")
    assert "cached representations of Note embed them" in error.msg

    class AuthorSerializer(serializers.ModelSerializer):
        class Meta:
            model = Author
            fields = ["name"]

    class NoteWithAuthorSerializer(serializers.ModelSerializer):
        author = AuthorSerializer()

        class Meta:
            model = Note
            fields = ["id", "text", "author"]

    # Embedding the author too: deleting one finds its notes first, with signals.
    empty_registry.by_model.clear()
    empty_registry.register(NoteWithAuthorSerializer)
    assert check_database_on_delete() == []


@isolate_apps("tests.testapp")
def test_a_unique_set_of_columns_is_a_total_ordering_where_django_says_so():
    class Seat(models.Model):
        row = models.CharField(max_length=2)
        number = models.IntegerField()

        class Meta:
            app_label = "testapp"
            unique_together = [("row", "number")]

    names = [term.field.name for term in resolve_ordering(Seat, ["row", "number"])]
    if hasattr(QuerySet, "totally_ordered"):  # Django 6.1: the unique pair decides
        assert names == ["row", "number"]
    else:
        assert names == ["row", "number", "id"]
    assert [t.field.name for t in resolve_ordering(Seat, ["row"])] == ["row", "id"]


class Measurement(serializers.Serializer):
    value = serializers.FloatField()


class LenientJSONParser(JSONParser):
    strict = False


class LenientORJSONParser(ORJSONParser):
    strict = False


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1.5"])
def test_floats_parse_and_validate_as_the_installed_drf_does(literal):
    """DRF 3.18 rejects nan and inf in FloatField; our parser hands DRF the same values, in
    strict mode (a 400 at parsing) and lenient mode (DRF's FloatField decides)."""
    body = b'{"value": ' + literal + b"}"
    finite = literal == b"1.5"
    for parsers in ((JSONParser(), ORJSONParser()), (LenientJSONParser(), LenientORJSONParser())):
        results = []
        for parser in parsers:
            try:
                data = parser.parse(io.BytesIO(body))
            except ParseError:
                results.append("parse error")
                continue
            serializer = Measurement(data=data)
            results.append(serializer.is_valid())
        assert results[0] == results[1], (parsers, results)
        if parsers[0].strict:
            assert results[0] is True if finite else results[0] == "parse error"
        else:
            assert results[0] is (finite or DRF < (3, 18))


def test_list_errors_are_the_installed_drfs_on_both_routers(user_client, catalog):
    """DRF 3.18 reports a list's errors by index (LIST_SERIALIZER_ERRORS_AS_DICT)."""
    product = catalog["products"][0]
    lines = [{"product": product.id, "quantity": 1}, {"product": product.id, "quantity": 0}]
    bodies = []
    for prefix in ("/naive/", "/api/"):
        response = user_client.post(f"{prefix}orders/", {"lines": lines}, format="json")
        assert response.status_code == 400
        bodies.append(response.json())
    assert bodies[0] == bodies[1]
    errors = bodies[0]["lines"]
    if DRF >= (3, 18):
        assert list(errors) == ["1"]
    else:
        assert errors[0] == {} and "quantity" in errors[1]


class BrandCountrySerializer(serializers.ModelSerializer):
    """Reads the brand through a property the planner cannot see: unplanned."""

    brand_country = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "brand_country"]

    def get_brand_country(self, product) -> str:
        return product.brand.name


def render_unplanned(rows: int) -> int:
    """The queries of rendering ``rows`` products with an unplanned relation, optimized."""
    if not Product.objects.exists():
        make_catalog(products=10)
    queryset = optimize(Product.objects.order_by("pk")[:rows], BrandCountrySerializer)
    with CaptureQueriesContext(connection) as queries:
        assert len(BrandCountrySerializer(queryset, many=True).data) == rows
    return len(queries)


FETCH_MODES = hasattr(models, "FETCH_PEERS")


@pytest.mark.django_db
def test_unplanned_relations_cost_one_query_per_relation_on_django_61(settings):
    """Django 6.1's fetch modes: an unplanned relation of a planned queryset is fetched for
    all the rows at once (FETCH_PEERS), per row with "one"; before 6.1 always per row."""
    settings.DRF_SCALE = {**settings.DRF_SCALE, "UNPLANNED_FETCH": "peers"}
    peers = render_unplanned(2), render_unplanned(8)
    settings.DRF_SCALE = {**settings.DRF_SCALE, "UNPLANNED_FETCH": "one"}
    one = render_unplanned(2), render_unplanned(8)
    assert one == (3, 9)  # the rows, then a brand per row
    assert peers == ((2, 2) if FETCH_MODES else one)


@pytest.mark.skipif(not FETCH_MODES, reason="fetch modes: Django 6.1+")
@pytest.mark.django_db
def test_unplanned_fetch_raise_names_the_model_and_field(settings):
    settings.DRF_SCALE = {**settings.DRF_SCALE, "UNPLANNED_FETCH": "raise"}
    with pytest.raises(FieldError, match=r"Product\.brand"):  # FieldFetchBlocked
        render_unplanned(2)
