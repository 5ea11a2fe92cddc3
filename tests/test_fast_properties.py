"""Property: for random rows over every supported field type, the compiled plan is DRF."""

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.renderers import JSONRenderer

from drf_scale.fast import compile_read_plan
from drf_scale.planner import optimize
from tests.fastapp.models import Country, Gadget, Label, Maker, Part, Spec
from tests.fastapp.serializers import GadgetSerializer, LabelSerializer

pytestmark = pytest.mark.django_db

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
moments = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
gadgets = st.fixed_dictionaries(
    {
        "name": text,
        "notes": text,
        "size": st.sampled_from(Gadget.Size.values),
        "rank": st.none() | st.integers(-(2**31), 2**31 - 1),
        "big": st.integers(-(2**63), 2**63 - 1),
        "small": st.none() | st.integers(0, 32767),
        "weight": st.none() | st.floats(allow_nan=False, allow_infinity=False, width=64),
        "price": st.none() | st.decimals(-999999, 999999, places=3),
        "active": st.booleans(),
        "flag": st.none() | st.booleans(),
        "released": st.none() | st.dates(date(1, 1, 1), date(9999, 12, 31)),
        "seen_at": st.none() | moments,
        "opens": st.none() | st.times(),
        "lasts": st.none() | st.timedeltas(-timedelta(days=9999), timedelta(days=9999)),
        "uid": st.uuids(),
        "data": json_values,
        "email": st.sampled_from(["", "a@example.com"]),
        "site": st.sampled_from(["", "https://example.com/x?y=1"]),
        "ip": st.none() | st.ip_addresses(v=4).map(str),
        "maker": st.sampled_from([None, 0, 1]),
        "labels": st.lists(st.integers(0, 2), max_size=3, unique=True),
        "parts": st.lists(st.tuples(text, st.integers(-5, 5)), max_size=3),
        "spec": st.none() | text,
    }
)


def create(rows: list[dict]) -> None:
    """The gadgets of ``rows`` with their relations, on a fresh set of tables."""
    for model in (Part, Spec, Gadget, Label, Maker, Country):
        model.objects.all().delete()
    country = Country.objects.create(code="FR")
    makers = [Maker.objects.create(name="Acme", country=country), Maker.objects.create(name="Bo")]
    labels = [Label.objects.create(slug=slug) for slug in ("a", "b", "c")]
    for row in rows:
        columns = {k: v for k, v in row.items() if k not in ("labels", "parts", "spec", "maker")}
        maker = None if row["maker"] is None else makers[row["maker"]]
        gadget = Gadget.objects.create(maker=maker, **columns)
        gadget.labels.set([labels[i] for i in row["labels"]])
        for name, position in row["parts"]:
            part = Part.objects.create(gadget=gadget, name=name, position=position)
            part.labels.set(labels[: position % 3])
        if row["spec"] is not None:
            Spec.objects.create(gadget=gadget, summary=row["spec"])


def as_json(data) -> object:
    return json.loads(JSONRenderer().render(data))


def assert_compiled_is_drf(serializer_class, queryset) -> None:
    plan = compile_read_plan(serializer_class)
    expected = as_json(serializer_class(optimize(queryset, serializer_class), many=True).data)
    assert as_json(plan.execute(queryset)) == expected


@PROPERTY
@given(
    rows=st.lists(gadgets, max_size=4),
    zone=st.sampled_from(["UTC", "Asia/Kolkata", "America/Los_Angeles"]),
)
def test_compiled_gadgets_are_drfs(rows, zone):
    create(rows)
    with timezone.override(zone):
        assert_compiled_is_drf(GadgetSerializer, Gadget.objects.order_by("id"))
        assert_compiled_is_drf(LabelSerializer, Label.objects.order_by("id"))


@PROPERTY
@given(rows=st.lists(gadgets, min_size=1, max_size=6))
def test_the_query_count_is_bounded_whatever_the_rows(rows):
    create(rows)
    plan = compile_read_plan(GadgetSerializer)
    for size in (1, len(rows)):
        with CaptureQueriesContext(connection) as captured:
            plan.execute(Gadget.objects.order_by("id")[:size])
        # The rows, then one query per to-many relation (7), skipped when no row has a key.
        assert len(captured) <= 8
