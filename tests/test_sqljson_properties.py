"""Property: the JSON PostgreSQL builds for a serializer is DRF's, byte for byte.

For random rows over each field type, ``compile_database_plan(S).execute(queryset)`` must
return what ``ORJSONRenderer().render(S(queryset, many=True).data)`` returns. Where DRF
raises (a datetime that overflows in the active time zone), the plan must raise too.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from drf_scale.renderers import ORJSONRenderer
from tests.sqlapp.models import Label, Note, Place, Reading
from tests.sqlapp.serializers import (
    CustomFieldReadingSerializer,
    DecimalNumberReadingSerializer,
    DecimalSettingReadingSerializer,
    FlatReadingSerializer,
    JSONReadingSerializer,
    LinkedReadingSerializer,
    MethodReadingSerializer,
    NestedReadingSerializer,
    ScalarReadingSerializer,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ZONES = [
    "UTC",
    "Europe/Paris",
    "America/St_Johns",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Sao_Paulo",
]

# Characters JSON encoders treat specially, drawn often; PostgreSQL refuses NUL, and text
# columns cannot hold lone surrogates.
SPECIAL = st.sampled_from(
    [
        *("\u2028", "\u2029", '"', "\\", "/", "\x01", "\x08", "\t", "\n", "\x0c", "\r"),
        *("\x1f", "\x7f", "\x80", "\x9f", "\u00a0", "\ufeff", "\ufffe", "\uffff", "<", "'"),
        *("\U0001f600", "é", "\u0301", "\U0010ffff", "\u200b"),
    ]
)
characters = st.characters(exclude_categories=["Cs"], exclude_characters="\x00") | SPECIAL


def text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(characters, max_size=max_size)


def with_microseconds_or_not(moment: datetime, whole: bool) -> datetime:
    return moment.replace(microsecond=0) if whole else moment


def aware(min_year: int, max_year: int) -> st.SearchStrategy[datetime]:
    """Aware datetimes (stored as instants) between two years, often on a whole second."""
    moments = st.datetimes(
        min_value=datetime(min_year, 1, 1),
        max_value=datetime(max_year, 12, 31, 23, 59, 59, 999999),
        timezones=st.just(UTC),
    )
    return st.builds(with_microseconds_or_not, moments, st.booleans())


# Most instants where time zones have history (LMT offsets, DST), some over the whole range.
moments = aware(1850, 2100) | aware(1, 9999)

PLAIN: dict[str, Any] = {
    "title": "reading",
    "body": "",
    "email": "",
    "slug": "",
    "count": 0,
    "big": 0,
    "small": 0,
    "active": True,
    "flag": None,
    "ratio": None,
    "price": Decimal("0"),
    "amount": Decimal("0"),
    "taken_at": None,
    "day": date(2024, 2, 29),
    "at": time(12, 30),
    "kind": Reading.Kind.MANUAL.value,
    "level": Reading.Level.LOW.value,
    "data": None,
    "place": None,
}
BASE: dict[str, st.SearchStrategy[Any]] = {
    **{name: st.just(value) for name, value in PLAIN.items()},
    "uid": st.uuids(),
}


def readings(**columns: st.SearchStrategy[Any]) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Lists of reading rows: ``columns`` drawn, every other column a plain default."""
    return st.lists(st.fixed_dictionaries({**BASE, **columns}), max_size=4)


def show(message: str) -> None:
    """Print ``message`` with a falsifying example (this hypothesis prints arguments blank)."""
    if currently_in_test_context():
        note(message)


def create(
    rows: list[dict[str, Any]],
    places: tuple[str, ...] = ("Lyon", "Zürich"),
    labels: tuple[str, ...] = ("a", "b", "c"),
) -> None:
    """The readings of ``rows`` on fresh tables; ``place`` is an index into ``places``.

    A row may also name ``labels`` (indexes into ``labels``) and ``notes`` ((text, moment)).
    """
    show(f"rows={rows!r}\nplaces={places!r}\nlabels={labels!r}")
    for model in (Note, Reading, Label, Place):
        model.objects.all().delete()
    place_rows = [Place.objects.create(name=name) for name in places]
    label_rows = [Label.objects.create(name=name) for name in labels]
    for row in rows:
        columns = {k: v for k, v in row.items() if k not in ("place", "labels", "notes")}
        place = None if row["place"] is None else place_rows[row["place"] % len(place_rows)]
        reading = Reading.objects.create(place=place, **columns)
        reading.labels.set([label_rows[i % len(label_rows)] for i in row.get("labels", [])])
        for note_text, written_at in row.get("notes", []):
            Note.objects.create(reading=reading, text=note_text, written_at=written_at)


def drf_bytes(serializer_class: Any, context: dict[str, Any] | None = None) -> bytes:
    """DRF's own rendering of every row of the serializer's model, by primary key."""
    queryset = serializer_class.Meta.model.objects.order_by("pk")
    return ORJSONRenderer().render(serializer_class(queryset, many=True, context=context).data)


def database_plan(serializer_class: Any) -> Any:
    from drf_scale.sqljson import compile_database_plan

    return compile_database_plan(serializer_class)


def first_difference(expected: bytes, got: bytes) -> str:
    at = next(
        (i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b),
        min(len(expected), len(got)),
    )
    start = max(0, at - 60)
    return (
        f"first difference at byte {at}:\n"
        f"  expected ...{expected[start : at + 60]!r}\n"
        f"  got      ...{got[start : at + 60]!r}"
    )


def assert_sql_is_drf(
    serializer_class: Any, context: dict[str, Any] | None = None, *, in_sql: bool = False
) -> None:
    """The plan's bytes are DRF's; where DRF raises, the plan raises the same class of error.
    ``in_sql``: and every row was written by PostgreSQL (one query: none left to Python)."""
    show(f"zone={timezone.get_current_timezone_name()!r}")
    plan = database_plan(serializer_class)  # compiled or not (test_the_serializers_compile)
    queryset = serializer_class.Meta.model.objects.order_by("pk")
    try:
        expected = drf_bytes(serializer_class, context)
    except Exception as error:  # what DRF raises, the plan must raise
        with pytest.raises(type(error)):
            plan.execute(queryset, context)
        return
    with CaptureQueriesContext(connection) as queries:
        got = plan.execute(queryset, context)
    assert isinstance(got, bytes)
    assert got == expected, first_difference(expected, got)
    if in_sql:
        assert len(queries) == 1, [query["sql"][:200] for query in queries]


# The plans compile, and the serializers that need Python say which field does.


@pytest.mark.parametrize(
    "serializer_class",
    [
        FlatReadingSerializer,
        ScalarReadingSerializer,
        JSONReadingSerializer,
        NestedReadingSerializer,
        DecimalNumberReadingSerializer,
    ],
)
def test_the_serializers_compile(serializer_class):
    plan = database_plan(serializer_class)
    assert plan.compiled is True
    assert tuple(plan.fallback_reasons) == ()


@pytest.mark.parametrize(
    ("serializer_class", "field_name"),
    [
        (MethodReadingSerializer, "shout"),
        (LinkedReadingSerializer, "link"),
        (CustomFieldReadingSerializer, "backwards"),
    ],
)
def test_fields_that_need_python_do_not_compile(serializer_class, field_name):
    plan = database_plan(serializer_class)
    assert plan.compiled is False
    assert isinstance(plan.fallback_reasons, tuple)
    assert any(field_name in reason for reason in plan.fallback_reasons), plan.fallback_reasons


def test_an_empty_table_is_an_empty_list():
    create([])
    assert database_plan(FlatReadingSerializer).execute(Reading.objects.order_by("pk")) == b"[]"
    assert_sql_is_drf(FlatReadingSerializer)
    assert_sql_is_drf(NestedReadingSerializer)


# One property per field type or group.


@PROPERTY
@given(
    rows=readings(
        title=text(200),
        body=text(300),
        email=text(254),
        slug=text(100),
        place=st.none() | st.integers(0, 1),
    ),
    place_name=text(100),
)
def test_strings(rows, place_name):
    create(rows, places=(place_name, "Zürich"))
    assert_sql_is_drf(ScalarReadingSerializer, in_sql=True)


@PROPERTY
@given(
    rows=readings(
        count=st.integers(-(2**31), 2**31 - 1),
        big=st.integers(-(2**63), 2**63 - 1),
        small=st.integers(-(2**15), 2**15 - 1),
    )
)
def test_integers(rows):
    create(rows)
    assert_sql_is_drf(ScalarReadingSerializer, in_sql=True)


SPECIAL_FLOATS = st.sampled_from(
    [
        *(0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308),
        *(1e16, 1e15, 123456789012345680.0, 1e-7, 1e-4, 0.1, 1 / 3, 2.0**53, 2.0**53 + 2),
        *(1e21, 1e22, 1e-5, 100.0, 0.30000000000000004, 1.5, -2.5e-8),
        *(math.nan, math.inf, -math.inf),
    ]
)


@PROPERTY
@given(rows=readings(ratio=st.none() | st.floats(width=64) | SPECIAL_FLOATS))
def test_floats(rows):
    create(rows)
    assert_sql_is_drf(ScalarReadingSerializer)


prices = st.decimals(
    min_value=Decimal("-9999999999.99"),
    max_value=Decimal("9999999999.99"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)
amounts = st.decimals(
    min_value=Decimal("-999999999999.99999999"),
    max_value=Decimal("999999999999.99999999"),
    places=8,
    allow_nan=False,
    allow_infinity=False,
)
small_amounts = st.decimals(
    min_value=Decimal("-0.001"), max_value=Decimal("0.001"), places=8
).filter(lambda d: d.is_finite())


@PROPERTY
@given(rows=readings(price=prices, amount=amounts | small_amounts))
def test_decimals_as_strings(rows):
    create(rows)
    assert_sql_is_drf(ScalarReadingSerializer, in_sql=True)


@PROPERTY
@given(rows=readings(price=prices, amount=amounts | small_amounts))
def test_decimals_as_numbers(rows):
    create(rows)
    assert_sql_is_drf(DecimalNumberReadingSerializer)


@PROPERTY
@given(
    rows=readings(
        price=prices, amount=amounts | small_amounts, ratio=st.none() | st.floats(width=64)
    )
)
def test_decimals_as_numbers_by_setting(rows):
    create(rows)
    numbers = {**django_settings.REST_FRAMEWORK, "COERCE_DECIMAL_TO_STRING": False}
    with override_settings(REST_FRAMEWORK=numbers):
        assert_sql_is_drf(DecimalSettingReadingSerializer)


def test_a_plan_follows_the_decimal_setting():
    row = {
        **PLAIN,
        "price": Decimal("12.50"),
        "amount": Decimal("0.00000001"),
        "uid": uuid.UUID(int=1),
    }
    create([row])
    assert_sql_is_drf(ScalarReadingSerializer)
    numbers = {**django_settings.REST_FRAMEWORK, "COERCE_DECIMAL_TO_STRING": False}
    with override_settings(REST_FRAMEWORK=numbers):
        assert_sql_is_drf(ScalarReadingSerializer)
    assert_sql_is_drf(ScalarReadingSerializer)


@PROPERTY
@given(rows=readings(taken_at=st.none() | moments), zone=st.sampled_from(ZONES))
def test_datetimes_in_each_time_zone(rows, zone):
    create(rows)
    with timezone.override(zone):
        assert_sql_is_drf(ScalarReadingSerializer)


@PROPERTY
@given(
    rows=readings(
        day=st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
        at=st.times() | st.times().map(lambda t: t.replace(microsecond=0)),
    ),
    zone=st.sampled_from(ZONES),
)
def test_dates_and_times(rows, zone):
    create(rows)
    with timezone.override(zone):
        assert_sql_is_drf(ScalarReadingSerializer, in_sql=True)


@PROPERTY
@given(
    rows=readings(
        uid=st.uuids() | st.just(uuid.UUID(int=0)),
        kind=st.sampled_from(Reading.Kind.values) | st.sampled_from(["", "other"]) | text(10),
        level=st.sampled_from(Reading.Level.values) | st.integers(-(2**31), 2**31 - 1),
        active=st.booleans(),
        flag=st.none() | st.booleans(),
    )
)
def test_uuids_choices_and_booleans(rows):
    create(rows)
    assert_sql_is_drf(ScalarReadingSerializer, in_sql=True)


@PROPERTY
@given(
    rows=readings(
        flag=st.none() | st.booleans(),
        ratio=st.none() | st.just(1.5),
        taken_at=st.none() | st.just(datetime(2020, 5, 17, 8, 0, tzinfo=UTC)),
        data=st.none() | st.just({"a": None}) | st.just([None]),
        place=st.none() | st.integers(0, 1),
    )
)
def test_nulls(rows):
    create(rows)
    assert_sql_is_drf(ScalarReadingSerializer, in_sql=True)
    assert_sql_is_drf(JSONReadingSerializer, in_sql=True)
    assert_sql_is_drf(NestedReadingSerializer, in_sql=True)


json_text = text(12)
# What SQL can write as it is: no fractions, integers shorter than 19 digits.
exact_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**18) + 1, 10**18 - 1) | json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_text, inner, max_size=4),
    max_leaves=10,
)
# Anything Python's json writes and jsonb reads: fractions, exponents, long integers.
any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_text, inner, max_size=4),
    max_leaves=10,
)


@PROPERTY
@given(rows=readings(data=st.none() | exact_json))
def test_json_documents(rows):
    create(rows)
    assert_sql_is_drf(JSONReadingSerializer, in_sql=True)


@PROPERTY
@given(rows=readings(data=st.none() | any_json))
def test_json_documents_with_any_number(rows):
    create(rows)
    assert_sql_is_drf(JSONReadingSerializer)


nested_rows = readings(
    title=text(20),
    taken_at=st.none() | moments,
    place=st.none() | st.integers(0, 2),
    labels=st.lists(st.integers(0, 3), max_size=4, unique=True),
    notes=st.lists(st.tuples(text(20), moments), max_size=3),
)


@PROPERTY
@given(
    rows=nested_rows,
    places=st.tuples(text(10), text(10), text(10)),
    labels=st.tuples(text(8), text(8), st.just("b"), st.just("b")),
    zone=st.sampled_from(ZONES),
)
def test_nested_relations(rows, places, labels, zone):
    create(rows, places=places, labels=labels)
    with timezone.override(zone):
        assert_sql_is_drf(NestedReadingSerializer)


every_column = readings(
    title=text(30),
    body=text(30),
    email=text(30),
    slug=text(30),
    count=st.integers(-(2**31), 2**31 - 1),
    big=st.integers(-(2**63), 2**63 - 1),
    small=st.integers(-(2**15), 2**15 - 1),
    active=st.booleans(),
    flag=st.none() | st.booleans(),
    ratio=st.none() | st.floats(width=64),
    price=prices,
    amount=amounts,
    taken_at=st.none() | moments,
    day=st.dates(),
    at=st.times(),
    kind=st.sampled_from(Reading.Kind.values),
    level=st.sampled_from(Reading.Level.values),
    data=st.none() | any_json,
    place=st.none() | st.integers(0, 1),
)


@PROPERTY
@given(rows=every_column, zone=st.sampled_from(ZONES))
def test_every_column_at_once(rows, zone):
    create(rows)
    with timezone.override(zone):
        assert_sql_is_drf(FlatReadingSerializer)
