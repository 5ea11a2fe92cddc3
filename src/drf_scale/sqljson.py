"""PostgreSQL writes a list's JSON: DRF's exact bytes, built by the query that reads the rows.

``compile_database_plan(ProductSerializer)`` walks a serializer whose read plan compiles
(``drf_scale.fast``) into one SQL expression per row: every value converted to its JSON text
in SQL (strings escaped as the renderer escapes them, datetimes in the current time zone with
DRF's ISO format, decimals with the field's places), nested to-one serializers joined,
to-many ones aggregated by a subquery each, so a nested list is still one query. The rows'
JSON goes to the response as it is (``orjson.Fragment``): no Python object per value.

Exactness comes first. A field the SQL cannot express as DRF does (a method field, a custom
field, a hyperlink, a format other than ISO 8601...) makes the whole serializer take the
compiled Python path, with the reason named in ``DatabasePlan.fallback_reasons``. A value
the SQL could render differently from Python (a float Python writes with an exponent, a
datetime outside 1900 to 2100, a JSON document holding a fraction, a rating on a rounding
tie...) makes its row's expression NULL, and that row renders through the Python plan.

A field class of one's own can say how it renders in SQL with a ``json_sql(value)`` method:
given the SQL of the value (never NULL), it returns the SQL of its JSON text, or NULL where
Python must render the row. ``float_json(sql)`` is the SQL of a float's JSON text.

Views opt in with ``render_in_database = True`` (``FastReadMixin``): meant for list endpoints
served by read replicas, since it moves the rendering work onto the database.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.db import connections, models
from django.db.models import Expression, F, OrderBy, OuterRef, Prefetch, Subquery, TextField
from django.db.models.constants import LOOKUP_SEP
from django.db.models.query import QuerySet
from django.db.models.sql import Query
from django.utils import timezone
from rest_framework import ISO_8601, fields, relations
from rest_framework.serializers import BaseSerializer, ListSerializer, Serializer
from rest_framework.settings import api_settings

from drf_scale.fast import ReadPlan, compile_read_plan
from drf_scale.model_meta import Kind, Relation, attribute, pk_attname, relation
from drf_scale.planner import QueryPlan, class_hints, ordered_for_values, queryset_of
from drf_scale.renderers import ORJSONRenderer

__all__ = ["JSON_COLUMN", "DatabasePlan", "compile_database_plan", "database_plan", "float_json"]

JSON_COLUMN = "_drf_scale_json"  # the rows' JSON text in DatabasePlan.rows()

Parts = list[Any]  # SQL text (str) and expressions compiled in place


class _SQL(Expression):
    """SQL text around expressions: ``parts`` holds raw SQL (str) and expressions."""

    output_field = TextField()

    def __init__(self, parts: Parts) -> None:
        super().__init__()
        self.parts = list(parts)

    def get_source_expressions(self) -> list[Any]:
        return [p for p in self.parts if not isinstance(p, str)]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        given = iter(exprs)
        self.parts = [p if isinstance(p, str) else next(given) for p in self.parts]

    def get_group_by_cols(self) -> list[Any]:
        """The columns it reads, for a grouped query; not its subqueries (Django 6 resolves
        them to queries), which read the outer rows through their grouped key."""
        sources = [s for s in self.get_source_expressions() if not _subquery(s)]
        return [col for source in sources for col in source.get_group_by_cols()]

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        sql: list[str] = []
        params: list[Any] = []
        for part in self.parts:
            if isinstance(part, str):
                sql.append(part)
            else:
                text, values = compiler.compile(part)
                sql.append(text)
                params.extend(values)
        return "".join(sql), tuple(params)


def _subquery(expression: Any) -> bool:
    inner = getattr(expression, "expression", expression)  # Django 6: ExpressionWrapper(Query)
    return isinstance(expression, Subquery) or isinstance(inner, Query)


def _literal(text: str) -> str:
    """An SQL string literal (standard_conforming_strings, PostgreSQL's default)."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def _json_literal(value: Any) -> str:
    """The JSON text of ``value`` as the renderer writes it, as an SQL literal."""
    text = orjson.dumps(value).decode().replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return _literal(text)


# Converters: the SQL parts of a non-null value's JSON text, NULL where Python must render.

Converter = Callable[[Parts], Parts]
_SEPARATORS = "U&'\\2028', '\\u2028'), U&'\\2029', '\\u2029')"


def _string(x: Parts) -> Parts:
    """to_json escapes as orjson does; the renderer also escapes U+2028 and U+2029."""
    return ["replace(replace(to_json((", *x, ")::text)::text, ", _SEPARATORS]


def _integer(x: Parts) -> Parts:
    return ["(", *x, ")::text"]


def _quoted(x: Parts) -> Parts:
    return ["('\"' || (", *x, ")::text || '\"')"]


def _boolean(x: Parts) -> Parts:
    return ["CASE WHEN (", *x, ") THEN 'true' ELSE 'false' END"]


def _float(x: Parts) -> Parts:
    """PostgreSQL and orjson both write a double's shortest digits; where PostgreSQL writes
    them without an exponent (1e-4 <= |x| < 1e15), orjson writes the same, with '.0' for an
    integer. Exponents, NaN and infinities: NULL."""
    text = ["substring((", *x, ")::float8::text from '^-?[0-9]+(?:\\.[0-9]+)?$')"]
    return ["regexp_replace(", *text, ", '^(-?[0-9]+)$', '\\1.0')"]


def float_json(value: str) -> str:
    """The SQL of the JSON text of the float ``value`` (SQL): NULL where Python must render."""
    return "".join(_float([value]))


def _decimal(places: int, column_places: int | None) -> Converter:
    def convert(x: Parts) -> Parts:
        if column_places == places:
            return _quoted(x)  # numeric keeps its scale: exactly the places DRF writes
        return _quoted(["round((", *x, ")::numeric, ", str(places), ")"])

    return convert


def _date(x: Parts) -> Parts:
    return ["to_json((", *x, ")::date)::text"]


def _time(x: Parts) -> Parts:
    """to_json drops a fraction's trailing zeros; isoformat writes six digits."""
    text = ["to_json((", *x, ")::time)::text"]
    exact = ["mod(date_part('microseconds', (", *x, ")::time)::int, 1000000) = 0"]
    return [
        "CASE WHEN ",
        *exact,
        " THEN ",
        *text,
        " ELSE rpad(left(",
        *text,
        ", -1), 16, '0') || '\"' END",
    ]


def _json(x: Parts) -> Parts:
    """jsonb's text with the spaces between tokens dropped (strings kept whole): orjson's
    output for the dict Django decodes. NULL when a number would not come back the same
    (a fraction or exponent becomes a float, 19 digits or more a long integer)."""
    tokens = (
        "FROM regexp_matches((",
        *x,
        ")::jsonb::text, '(\"(?:[^\"\\\\]|\\\\.)*\"|[^\" ]+)', 'g') WITH ORDINALITY AS _t(m, n)",
    )
    risky = "_t.m[1] !~ '^\"' AND _t.m[1] ~ '[.]|[0-9][eE]|[0-9]{19}'"
    body = [
        "(SELECT CASE WHEN bool_or(",
        risky,
        ") THEN NULL ELSE string_agg(_t.m[1], '' ORDER BY _t.n) END ",
        *tokens,
        ")",
    ]
    return ["replace(replace(", *body, ", ", _SEPARATORS]


def _uuid(hex_only: bool) -> Converter:
    def convert(x: Parts) -> Parts:
        text = ["replace((", *x, ")::text, '-', '')"] if hex_only else x
        return _quoted(text)

    return convert


class _Zone:
    """A time zone's UTC offsets from 1900 to 2100, found in Python's own zone data, as SQL
    arrays: the offset of an instant is one binary search (``width_bucket``) away."""

    START = datetime.datetime(1900, 1, 1, tzinfo=datetime.UTC).timestamp()
    END = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC).timestamp()
    STEP = 86400 * 7  # zones change offset at most once in a week

    def __init__(self, zone: datetime.tzinfo) -> None:
        def offset(at: float) -> int:
            moment = datetime.datetime.fromtimestamp(at, datetime.UTC).astimezone(zone)
            return int(moment.utcoffset().total_seconds())  # type: ignore[union-attr]

        bounds, offsets = [self.START], [offset(self.START)]
        at = self.START
        while at < self.END:
            step = min(self.STEP, self.END - at)
            if offset(at + step) != offsets[-1]:
                low, high = at, at + step  # the change is in (low, high]: find its second
                while high - low > 1:
                    middle = (low + high) // 2
                    low, high = (middle, high) if offset(middle) == offsets[-1] else (low, middle)
                bounds.append(high)
                offsets.append(offset(high))
                at = high
            else:
                at += step
        bounds.append(self.END)
        # Arrays of variable-length elements or with NULLs are read element by element, so
        # the long one maps each span to a distinct offset, 1-based, the short ones hold the
        # distinct offsets; the last, with no text, stands before 1900 and from 2100, where
        # Python renders the row.
        distinct = list(dict.fromkeys(offsets))
        spans = [len(distinct) + 1, *(distinct.index(o) + 1 for o in offsets), len(distinct) + 1]
        texts = [_literal(_offset_text(seconds)) for seconds in distinct]
        self.bounds = "ARRAY[" + ",".join(f"{b:.0f}" for b in bounds) + "]::float8[]"
        self.spans = "(ARRAY[" + ",".join(map(str, spans)) + "]::int[])"
        self.seconds = "(ARRAY[" + ",".join(map(str, [*distinct, 0])) + "]::int[])"
        self.texts = "(ARRAY[" + ",".join([*texts, "NULL"]) + "]::text[])"

    def datetime(self, x: Parts) -> Parts:
        span = [self.spans, "[width_bucket(date_part('epoch', ", *x, "), ", self.bounds, ") + 1]"]
        local = [
            "(",
            *x,
            ") AT TIME ZONE 'UTC' + ",
            self.seconds,
            "[",
            *span,
            "] * interval '1 second'",
        ]
        text = ["left(to_json(", *local, ")::text, -1)"]
        whole = ["mod(date_part('microseconds', ", *x, ")::int, 1000000) = 0"]
        return [
            "(CASE WHEN ", *whole, " THEN ", *text, " ELSE rpad(", *text, ", 27, '0') END || ",
            self.texts, "[", *span, "])",
        ]  # fmt: skip


def _offset_text(seconds: int) -> str:
    """isoformat()'s offset as DRF writes it: 'Z' for UTC, seconds only when there are."""
    zone = datetime.timezone(datetime.timedelta(seconds=seconds))
    text = datetime.datetime(2000, 1, 1, tzinfo=zone).isoformat()[19:]
    return ("Z" if text == "+00:00" else text) + '"'


@functools.lru_cache(maxsize=64)
def _zone(zone: datetime.tzinfo) -> _Zone:
    return _Zone(zone)


# The compiled tree: what each item of a representation reads, decided once per serializer.


@dataclass(frozen=True)
class _Value:
    """A value of the rows: a column through to-one relations, or an annotation."""

    key: str
    path: str  # lookup from the object's model
    field: fields.Field
    model_field: models.Field[Any, Any] | None  # None: an annotation, typed per request
    nullable: bool  # the path crosses a nullable relation or column


@dataclass(frozen=True)
class _One:
    key: str
    path: str  # the relation's lookup
    node: _Object
    null: bool


@dataclass(frozen=True)
class _Many:
    key: str
    start: str  # lookup from the object's model to the model the step leaves from
    step: Relation
    node: _Object | _Value  # an object, or a related key or slug
    queryset: QuerySet | None  # a declared Prefetch's


@dataclass(frozen=True)
class _Object:
    items: tuple[_Value | _One | _Many, ...]


class _Unsupported(Exception):
    """A field the SQL cannot write as DRF does; its message is the reason."""


_TEXT = (models.CharField, models.TextField)
_BIG_INTEGER = getattr(fields, "BigIntegerField", None)  # DRF 3.17+
_INTEGER = (models.IntegerField, models.AutoField, models.BigAutoField, models.SmallAutoField)


def _plain(model_field: models.Field[Any, Any]) -> bool:
    """Django's own conversion of the column: no from_db_value of a third-party field."""
    own = type(model_field).__module__.startswith("django.")
    return own or not hasattr(model_field, "from_db_value")


class _Compiler:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.annotations: dict[str, Any] = {}

    def fail(self, where: str, f: Any, why: str) -> None:
        self.reasons.append(f"{where}: {type(f).__name__} — {why}")

    def serializer(
        self, serializer: Serializer[Any], model: type[models.Model], where: str, root: bool
    ) -> _Object:
        declared: dict[str, Prefetch] = {}
        for hint in class_hints(serializer):
            if root:
                self.annotations.update(hint.annotate)
            for lookup in hint.prefetch:
                if isinstance(lookup, Prefetch):
                    declared[lookup.to_attr or lookup.prefetch_through] = lookup
        items = []
        for name, f in serializer.fields.items():
            if f.write_only:
                continue
            try:
                items.append(self.field(f, model, declared, f"{where}.{name}", root))
            except _Unsupported as exc:
                self.fail(f"{where}.{name}", f, str(exc))
        return _Object(tuple(items))

    def field(
        self,
        f: fields.Field,
        model: type[models.Model],
        declared: Mapping[str, Prefetch],
        where: str,
        root: bool,
    ) -> _Value | _One | _Many:
        key = str(f.field_name)
        if isinstance(f, fields.SerializerMethodField):
            raise _Unsupported("a method field runs Python per object")
        if isinstance(f, relations.HyperlinkedRelatedField | relations.HyperlinkedIdentityField):
            raise _Unsupported("hyperlinks are reversed in Python")
        if _own(f, "to_representation") and getattr(f, "json_sql", None) is None:
            raise _Unsupported("its own to_representation() runs Python; give it json_sql()")
        if f.source == "*" or _own(f, "get_attribute"):
            raise _Unsupported("it reads the instance itself")
        *through, last = f.source_attrs
        path, nullable = [], False
        for name in through:
            step = relation(model, name)
            if step is None or step.many or not step.forward:
                raise _Unsupported(f"source {f.source!r}: {name} is no forward to-one relation")
            path.append(step.name)
            nullable = nullable or step.null
            model = step.related_model
        if nullable and not f.allow_null:
            raise _Unsupported(f"source {f.source!r} crosses a nullable relation")
        prefix = LOOKUP_SEP.join(path)
        if last in declared:
            return self.many(f, model, prefix, key, declared[last], where)
        if root and not through and last in self.annotations:
            return _Value(key, last, f, None, True)
        found = attribute(model, last)
        if found is None:
            if root and not through and not hasattr(model, last):  # the view annotates it
                return _Value(key, last, f, None, True)
            raise _Unsupported(f"{model.__name__}.{last} is no column nor relation")
        if isinstance(found, Relation):
            if not found.plannable:
                raise _Unsupported(f"{model.__name__}.{last} cannot be joined")
            if found.many:
                return self.many(f, model, prefix, key, found, where)
            return self.one(f, found, prefix, key, nullable, where)
        full = _join(prefix, found.name)
        if not found.column or not found.concrete or not _plain(found.field):
            raise _Unsupported(f"{model.__name__}.{last} converts its values in Python")
        column = found.field
        if isinstance(f, relations.PrimaryKeyRelatedField) and column.remote_field is not None:
            column = column.target_field  # type: ignore[attr-defined]  # source="brand_id"
            if f.pk_field is not None or not column.primary_key:
                raise _Unsupported("pk_field, or a key to no primary key")
        elif isinstance(f, BaseSerializer | relations.RelatedField | relations.ManyRelatedField):
            raise _Unsupported(f"{model.__name__}.{last} is a column, not a relation")
        converter_of(f, column)  # checks the pair once (formats are read per request)
        return _Value(key, full, f, column, nullable or found.field.null)

    def one(
        self, f: fields.Field, step: Relation, prefix: str, key: str, nullable: bool, where: str
    ) -> _Value | _One:
        null = nullable or step.null
        path = _join(prefix, step.name)
        if not step.forward:
            raise _Unsupported("a reverse one-to-one is not joined")
        if isinstance(f, Serializer) and not isinstance(f, ListSerializer):
            _check_serializer(f)
            return _One(key, path, self.serializer(f, step.related_model, where, False), null)
        target = step.declaring_field.target_field  # type: ignore[attr-defined]
        if isinstance(f, relations.PrimaryKeyRelatedField) and not _own(f, "to_representation"):
            if f.pk_field is not None or not target.primary_key:
                raise _Unsupported("pk_field, or a key to no primary key")
            return _Value(key, _join(prefix, str(step.attname)), f, target, null)
        if isinstance(f, relations.SlugRelatedField) and not _own(f, "to_representation"):
            return self.slug(f, step.related_model, _join(path, f.slug_field), key, null)
        raise _Unsupported("a related field the SQL does not know")

    def slug(self, f: Any, model: type[models.Model], path: str, key: str, null: bool) -> _Value:
        found = attribute(model, path.rsplit(LOOKUP_SEP, 1)[-1])
        if found is None or isinstance(found, Relation) or not _plain(found.field):
            raise _Unsupported(f"slug_field {f.slug_field!r} is no plain column")
        _raw(found.field)
        return _Value(key, path, f, found.field, null or found.field.null)

    def many(
        self,
        f: fields.Field,
        model: type[models.Model],
        prefix: str,
        key: str,
        found: Relation | Prefetch,
        where: str,
    ) -> _Many:
        queryset = None
        if isinstance(found, Prefetch):
            queryset = found.queryset
            step = relation(model, found.prefetch_through)
            if step is None or not step.many:
                raise _Unsupported(f"Prefetch({found.prefetch_through!r}) is no to-many relation")
            if queryset is not None and queryset.query.is_sliced:
                raise _Unsupported("its Prefetch is sliced")
        else:
            step = found
        if step.kind is Kind.REVERSE_FOREIGN_KEY and not _to_pk(step):
            raise _Unsupported("a reverse foreign key to no primary key")
        if isinstance(f, ListSerializer) and isinstance(f.child, Serializer):
            _check_serializer(f.child)
            if _own(f, "to_representation"):
                raise _Unsupported("its list serializer's own to_representation() runs Python")
            node: _Object | _Value = self.serializer(f.child, step.related_model, where, False)
            return _Many(key, prefix, step, node, queryset)
        if isinstance(f, relations.ManyRelatedField) and not _own(f, "to_representation"):
            child = f.child_relation
            related = step.related_model
            own = _own(child, "to_representation")
            if isinstance(child, relations.PrimaryKeyRelatedField) and not own:
                if child.pk_field is not None:
                    raise _Unsupported("pk_field converts the keys in Python")
                pk = _Value(key, "pk", child, related._meta.pk, False)
                return _Many(key, prefix, step, pk, queryset)
            if isinstance(child, relations.SlugRelatedField) and not own:
                slug = self.slug(child, related, child.slug_field, key, False)
                return _Many(key, prefix, step, slug, queryset)
        raise _Unsupported("a to-many field the SQL does not know")


def _check_serializer(serializer: Serializer[Any]) -> None:
    """A nested serializer built (its own __init__ or get_fields() ran) writes its fields."""
    if _own(serializer, "to_representation"):
        raise _Unsupported(f"{type(serializer).__name__}.to_representation() is its own code")
    if getattr(serializer, "compiled_postprocess", None):
        raise _Unsupported("its compiled_postprocess runs Python")


def _to_pk(step: Relation) -> bool:
    return bool(step.declaring_field.target_field.primary_key)  # type: ignore[attr-defined]


def _drf_class(f: fields.Field) -> type:
    """The DRF class ``f`` represents values as (its own to_representation() aside)."""
    return next(k for k in type(f).__mro__ if k.__module__.startswith("rest_framework."))


def _own(obj: Any, name: str) -> bool:
    """Whether ``obj``'s class has method ``name`` from code outside DRF."""
    for klass in type(obj).__mro__:
        if name in vars(klass):
            return not klass.__module__.startswith("rest_framework.")
    return False


def _raw(model_field: models.Field[Any, Any]) -> Converter:
    """A column's value as the renderer writes the Python value (a related key, a slug)."""
    if isinstance(model_field, models.BooleanField):
        return _boolean
    if isinstance(model_field, _INTEGER):
        return _integer
    if isinstance(model_field, _TEXT):
        return _string
    if isinstance(model_field, models.UUIDField):
        return _uuid(hex_only=False)
    raise _Unsupported(f"a {type(model_field).__name__} value rendered as it is")


def converter_of(f: Any, model_field: Any) -> Converter:
    """The converter of DRF field ``f`` on values of ``model_field`` (a column, or an
    annotation's output field), as DRF's settings and the field's options are now."""
    if getattr(f, "json_sql", None) is not None:
        return _hooked(f.json_sql)
    if not _plain(model_field):
        raise _Unsupported(f"{type(model_field).__name__} converts its values in Python")
    if isinstance(f, relations.PrimaryKeyRelatedField | relations.SlugRelatedField):
        return _raw(model_field)
    kind = _drf_class(f)
    if kind is fields.ChoiceField:
        keys = list(f.choices)  # enum members write as their values, as str and int do
        if isinstance(model_field, _TEXT) and all(isinstance(k, str) for k in keys):
            return _string
        numbers = all(isinstance(k, int) and not isinstance(k, bool) for k in keys)
        if isinstance(model_field, _INTEGER) and numbers:
            return _integer
        raise _Unsupported("choices of another type than the column's")
    if kind in (fields.CharField, fields.EmailField, fields.SlugField, fields.URLField,
                   fields.RegexField):  # fmt: skip
        if isinstance(model_field, _TEXT):
            return _string
    elif kind is _BIG_INTEGER:
        if isinstance(model_field, _INTEGER):
            coerce = getattr(f, "coerce_to_string", api_settings.COERCE_BIGINT_TO_STRING)
            return _quoted if coerce else _integer
    elif kind is fields.IntegerField:
        if isinstance(model_field, _INTEGER):
            return _integer
    elif kind is fields.BooleanField:
        if isinstance(model_field, models.BooleanField):
            return _boolean
    elif kind is fields.FloatField:
        if isinstance(model_field, (models.FloatField, models.DecimalField, *_INTEGER)):
            return _float
    elif kind is fields.DecimalField:
        if isinstance(model_field, models.DecimalField):
            return _decimal_of(f, model_field)
    elif kind is fields.DateTimeField:
        if isinstance(model_field, models.DateTimeField):
            return _datetime_of(f)
    elif kind is fields.DateField:
        if isinstance(model_field, models.DateField) and not isinstance(
            model_field, models.DateTimeField
        ):
            _iso(f, "DATE_FORMAT")
            return _date
    elif kind is fields.TimeField:
        if isinstance(model_field, models.TimeField):
            _iso(f, "TIME_FORMAT")
            return _time
    elif kind is fields.UUIDField:
        if isinstance(model_field, models.UUIDField) and f.uuid_format in ("hex_verbose", "hex"):
            return _uuid(hex_only=f.uuid_format == "hex")
    elif kind is fields.JSONField:
        if (
            isinstance(model_field, models.JSONField)
            and not f.binary
            and model_field.decoder is None
            and f.decoder is None
        ):
            return _json
    elif kind is fields.ReadOnlyField:
        return _raw(model_field)
    raise _Unsupported(f"a {type(f).__name__} of a {type(model_field).__name__} column")


def _iso(f: fields.Field, setting: str) -> None:
    output = getattr(f, "format", getattr(api_settings, setting))
    if not isinstance(output, str) or output.lower() != ISO_8601:
        raise _Unsupported(f"its format is {output!r}, not ISO 8601")


def _decimal_of(f: fields.DecimalField, model_field: models.DecimalField[Any, Any]) -> Converter:
    if f.localize or f.normalize_output or f.decimal_places is None:
        raise _Unsupported("localize, normalize_output or no decimal_places")
    if f.decimal_places < (model_field.decimal_places or 0):
        raise _Unsupported("fewer decimal places than the column: DRF rounds half to even")
    if f.max_digits is not None and f.max_digits < (model_field.max_digits or 0):
        raise _Unsupported("fewer digits than the column")
    if not getattr(f, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING):
        return _float  # the renderer writes a Decimal as a float
    return _decimal(f.decimal_places, model_field.decimal_places)


def _datetime_of(f: fields.DateTimeField) -> Converter:
    _iso(f, "DATETIME_FORMAT")
    if not settings.USE_TZ:
        raise _Unsupported("USE_TZ is False")
    zone = f.timezone if hasattr(f, "timezone") else timezone.get_current_timezone()
    if zone is None:
        raise _Unsupported("no time zone")
    return _zone(zone).datetime


def _hooked(json_sql: Callable[[str], str]) -> Converter:
    token = "\x00value\x00"
    text = json_sql(token)

    def convert(x: Parts) -> Parts:
        pieces = text.split(token)
        parts: Parts = [pieces[0]]
        for piece in pieces[1:]:
            parts += ["(", *x, ")", piece]
        return parts

    return convert


# Expressions, built per request: formats, time zones and annotations are read then.


class _Builder:
    """The expression of a representation, for the annotations of one request's queryset."""

    def __init__(self, annotations: Mapping[str, Any]) -> None:
        self.annotations = annotations

    def object(self, node: _Object, prefix: str) -> Parts:
        parts: Parts = []
        for i, item in enumerate(node.items):
            parts.append(("'{" if i == 0 else "',") + _json_literal(item.key)[1:-1] + ":' || ")
            parts += self.item(item, prefix)
            parts.append(" || ")
        return [*parts, "'}'"] if parts else ["'{}'"]

    def item(self, item: _Value | _One | _Many, prefix: str) -> Parts:
        if isinstance(item, _Value):
            return self.value(item, prefix)
        if isinstance(item, _One):
            path = _join(prefix, item.path)
            inner = self.object(item.node, path)
            if not item.null:
                return ["(", *inner, ")"]
            present = F(_join(path, "pk"))
            return ["CASE WHEN ", present, " IS NULL THEN 'null' ELSE ", *inner, " END"]
        return self.many(item, prefix)

    def value(self, item: _Value, prefix: str) -> Parts:
        if item.model_field is None:  # an annotation of the request's queryset
            convert = converter_of(item.field, self.annotations[item.path].output_field)
        else:
            convert = converter_of(item.field, item.model_field)
        x: Parts = [F(_join(prefix, item.path))]
        if not item.nullable:
            return ["(", *convert(x), ")"]

        def nullable(v: Parts) -> Parts:
            return ["CASE WHEN ", *v, " IS NULL THEN 'null' ELSE ", *convert(v), " END"]

        if item.model_field is None:  # a subquery, maybe: evaluated once
            return ["(SELECT ", *nullable(["_v.v"]), " FROM (SELECT ", *x, " AS v OFFSET 0) _v)"]
        return nullable(x)

    def many(self, item: _Many, prefix: str) -> Parts:
        """A to-many relation's JSON array: a subquery aggregating its rows' JSON in the order
        DRF reads them (the Prefetch's ordering, else the model's, then the primary key)."""
        step, start = item.step, _join(prefix, item.start)
        related = step.related_model
        queryset = item.queryset if item.queryset is not None else related._default_manager.all()
        if step.kind is Kind.REVERSE_FOREIGN_KEY:
            back = {step.declaring_field.attname: OuterRef(_join(start, "pk"))}
        else:
            back = {step.back: OuterRef(_join(start, "pk"))}
        ordering: list[Any] = [*(queryset.query.order_by or related._meta.ordering or ()), "pk"]
        node = item.node
        element = self.object(node, "") if isinstance(node, _Object) else self.value(node, "")
        keys: dict[str, Any] = {}
        order: list[str] = []
        for i, by in enumerate(_order(o) for o in ordering):
            keys[f"_o{i}"] = by.expression
            nulls = " NULLS LAST" if by.nulls_last else " NULLS FIRST" if by.nulls_first else ""
            order.append(f"_m._o{i}{' DESC' if by.descending else ''}{nulls}")
        rows = queryset.filter(**back).order_by().annotate(_j=_SQL(element), **keys)
        return [
            "(SELECT CASE WHEN count(*) = count(_m._j) THEN coalesce('[' || "
            f"string_agg(_m._j, ',' ORDER BY {', '.join(order)}) || ']', '[]') END FROM ",
            Subquery(rows.values("_j", *keys), output_field=TextField()),
            " _m)",
        ]


def _join(prefix: str, path: str) -> str:
    return f"{prefix}{LOOKUP_SEP}{path}" if prefix else path


def _order(ordering: Any) -> OrderBy:
    """An ordering of Django's (a name, "-name", an expression) as an OrderBy."""
    if isinstance(ordering, str):
        if ordering == "?":
            raise _Unsupported("a random ordering")
        descending = ordering.startswith("-")
        return OrderBy(F(ordering.lstrip("-")), descending=descending)
    if isinstance(ordering, OrderBy):
        return ordering
    return OrderBy(ordering)


# Plans.


@dataclass(frozen=True, eq=False)
class DatabasePlan:
    """How PostgreSQL writes a serializer's JSON, or why it does not (``fallback_reasons``)."""

    read_plan: ReadPlan
    fallback_reasons: tuple[str, ...] = ()
    _root: _Object | None = dataclasses.field(default=None, repr=False)
    _annotations: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def compiled(self) -> bool:
        return self._root is not None

    def describe(self) -> str:
        name = self.read_plan.serializer_class.__name__
        if self._root is None:
            return f"{name} renders in Python: " + "; ".join(self.fallback_reasons)
        return f"{name} renders in the database"

    def unusable(self, queryset: QuerySet) -> str | None:
        """Why this request renders ``queryset`` in Python (None: in the database)."""
        if self._root is None:
            return "; ".join(self.fallback_reasons)
        if connections[queryset.db].vendor != "postgresql":
            return "the database is no PostgreSQL"
        if not self.read_plan.serves(queryset):
            return "the view's Prefetch filters a relation the plan reads"
        if queryset.query.combinator:
            return f"the queryset is a {queryset.query.combinator}, which takes no annotation"
        return None

    def rows(self, queryset: QuerySet, extra_columns: Iterable[str] = ()) -> QuerySet | None:
        """``queryset`` as ``values()`` rows of ``JSON_COLUMN`` (the row's JSON text, None
        where Python must render it), its primary key and ``extra_columns``: paginate it,
        ``render()`` a page. For a queryset the plan is usable for (``unusable()`` is None, which
        the caller asks once); None when a field cannot render in SQL for this request (a view
        annotation the queryset lacks, a format or time zone set since)."""
        assert self._root is not None
        queryset = queryset_of(queryset)
        annotated = QueryPlan(annotations=self._annotations).apply(queryset.prefetch_related(None))
        annotations = annotated.query.annotations
        try:
            expression = _SQL(_Builder(annotations).object(self._root, ""))
        except (_Unsupported, KeyError):  # a view annotation the queryset lacks: KeyError
            return None
        rows = ordered_for_values(annotated).annotate(**{JSON_COLUMN: expression})
        columns = dict.fromkeys([JSON_COLUMN, pk_attname(queryset.model), *extra_columns])
        values = rows.values(*columns)
        values.count = queryset.count  # type: ignore[method-assign]
        return values

    def render(
        self,
        page: Sequence[Mapping[str, Any]],
        queryset: QuerySet,
        context: Mapping[str, Any] | None = None,
    ) -> list[str | bytes]:
        """The JSON of each row of a page (of ``rows()``); the rows the SQL left to Python
        render through the compiled plan, in one query."""
        pk_name = pk_attname(queryset.model)
        missing = [row[pk_name] for row in page if row[JSON_COLUMN] is None]
        rendered = self.read_plan.render_by_pk(queryset, missing, context) if missing else {}
        renderer = ORJSONRenderer()
        return [
            row[JSON_COLUMN]
            if row[JSON_COLUMN] is not None
            else renderer.render(rendered[row[pk_name]])
            for row in page
        ]

    def render_by_pk(
        self, queryset: QuerySet, pks: Sequence[Any], context: Mapping[str, Any] | None = None
    ) -> dict[Any, Any]:
        """The representations of rows ``pks`` of ``queryset`` (one the plan is usable for) by
        primary key: their JSON, as ``orjson.Fragment``."""
        rows = self.rows(queryset.filter(pk__in=pks))
        if rows is None:
            return self.read_plan.render_by_pk(queryset, pks, context)
        page = list(rows)
        pk_name = pk_attname(queryset.model)
        keys = [row[pk_name] for row in page]
        bodies = self.render(page, queryset, context)
        return {key: orjson.Fragment(body) for key, body in zip(keys, bodies, strict=True)}

    def execute(self, queryset: Any, context: Mapping[str, Any] | None = None) -> bytes:
        """The compact JSON of ``serializer_class(queryset, many=True).data``."""
        queryset = queryset_of(queryset)
        rows = None if self.unusable(queryset) is not None else self.rows(queryset)
        if rows is None:
            return ORJSONRenderer().render(self.read_plan.execute(queryset, context))
        bodies = self.render(list(rows), queryset, context)
        return orjson.dumps([orjson.Fragment(body) for body in bodies])


_plans: dict[tuple[Any, ...], DatabasePlan] = {}
_plans_lock = threading.Lock()


def database_plan(read_plan: ReadPlan) -> DatabasePlan:
    """The database plan of a read plan's serializer (compiled once per class and field
    names: a serializer whose fields the request selects compiles per selection)."""
    if not read_plan.compiled:
        return DatabasePlan(read_plan, read_plan.fallback_reasons)
    serializer: Any = read_plan._serializer or read_plan.serializer_class()
    names = tuple(name for name, f in serializer.fields.items() if not f.write_only)
    key = (read_plan.serializer_class, names)
    plan = _plans.get(key)
    if plan is None:
        with _plans_lock:
            plan = _plans.get(key) or _compile(read_plan, serializer)
            _plans[key] = plan
    return dataclasses.replace(plan, read_plan=read_plan)


def _compile(read_plan: ReadPlan, serializer: Any) -> DatabasePlan:
    compiler = _Compiler()
    name = read_plan.serializer_class.__name__
    model = read_plan.serializer_class.Meta.model  # type: ignore[attr-defined]
    root = compiler.serializer(serializer, model, name, True)
    if read_plan._shape is not None or read_plan.shapes_lists:
        compiler.reasons.append(f"{name}: its compiled_postprocess or list serializer runs Python")
    if compiler.reasons:
        return DatabasePlan(read_plan, tuple(compiler.reasons))
    return DatabasePlan(read_plan, (), root, dict(compiler.annotations))


def compile_database_plan(serializer_class: type[BaseSerializer]) -> DatabasePlan:
    """The database plan of ``serializer_class`` (its read plan's, compiled once)."""
    return database_plan(compile_read_plan(serializer_class))  # type: ignore[arg-type]
