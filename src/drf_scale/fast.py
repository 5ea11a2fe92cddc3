"""Serializers compiled to values() read plans: DRF's output without DRF's per-row work.

``compile_read_plan(ProductSerializer)`` walks the serializer's field tree once per class and
returns a ``ReadPlan``: one ``values()`` query for the rows and their to-one relations (joined),
one query per to-many relation (filtered by the parent keys, stitched in Python, at any depth),
and per query a transform generated as Python code, a dict literal of row lookups and
converters chosen at compile time from each field's DRF semantics. ``ReadPlan.execute`` returns
what ``ProductSerializer(queryset, many=True).data`` returns, as JSON.

Besides columns, relations, annotations and ``@batch`` method fields, DRF's hyperlinks
(``HyperlinkedModelSerializer``'s ``url`` and related links: integer keys substituted into a
URL reversed once per render), ``FileField``/``ImageField`` (the storage's URL) and
``ModelField`` (the model field's own ``value_to_string()``) compile.

A root field the compiler cannot read from columns (a method field without ``@batch``, a
field that needs the instance, a nested serializer with such a field) renders through its own
DRF field from the page's model instances, which the compiled fields read their columns off
(one query, as DRF loads its page), merged into each row in the serializer's field order
(``ReadPlan.instance_fields``, ``ReadPlan.coverage``), unless
``DRF_SCALE["PARTIAL_COMPILATION"]`` is False. A serializer with no field but its primary key
compiled renders through DRF instead.
``ReadPlan.fallback_reasons`` names each such field: ``"<path>: <field class> — <why>"``.
It is logged once per class, as a WARNING.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import decimal
import functools
import itertools
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType, SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar, cast

import orjson
from django.core.exceptions import FieldError, ObjectDoesNotExist
from django.db import models
from django.db.models import F, Prefetch
from django.db.models.constants import LOOKUP_SEP
from django.db.models.fields.files import (
    FieldFile,
    FileDescriptor,
    ImageFieldFile,
    ImageFileDescriptor,
)
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query import QuerySet
from django.db.models.query_utils import DeferredAttribute
from django.urls import NoReverseMatch
from django.utils.encoding import is_protected_type
from rest_framework import ISO_8601, fields, relations
from rest_framework.serializers import BaseSerializer, ListSerializer, Serializer
from rest_framework.settings import api_settings

from drf_scale.conf import scale_settings
from drf_scale.model_meta import (
    ModelField,
    Relation,
    attribute,
    column_attname,
    pk_attname,
    relation,
)
from drf_scale.planner import (
    AnyQuerySet,
    QueryPlan,
    Requirements,
    _build,
    _Node,
    _Walk,
    class_hints,
    optimize,
    ordered_for_values,
    queryset_of,
    requires,
)

if TYPE_CHECKING:
    # Django's private prefetch filter, absent from django-stubs.
    def _filter_prefetch_queryset(
        queryset: QuerySet, field_name: str, instances: list[Any]
    ) -> QuerySet: ...
else:
    from django.db.models.fields.related_descriptors import _filter_prefetch_queryset

__all__ = [
    "ReadPlan",
    "batch",
    "compile_read_plan",
    "compile_read_plan_for",
    "plan_without_building",
]

logger = logging.getLogger("drf_scale.fast")

Converter = Callable[[Any], Any]
Row = dict[str, Any]
FieldT = TypeVar("FieldT")

_BATCH = "_drf_scale_batch"
_PARENT = "_drf_scale_parent"  # the values() alias of a to-many row's parent key
_TEXT = (models.CharField, models.TextField)
_UTC = datetime.UTC
_UTC_ZONES = (_UTC, "UTC", "Etc/UTC")
_PLAIN_DESCRIPTORS = (DeferredAttribute, ForeignKeyDeferredAttribute)
_GET_ATTRIBUTE = (
    fields.Field.get_attribute,
    relations.RelatedField.get_attribute,
    relations.ManyRelatedField.get_attribute,
)


# Batch hints: method fields that run once per set of rows.


def batch(*columns: str) -> Callable[[Callable[..., Sequence[Any]]], Callable[[Any, Any], Any]]:
    """Let a ``get_<name>`` method field stay on the compiled path: it runs once per set of rows.

    The decorated method receives a list of row dicts holding ``columns`` (paths relative to the
    serializer's model, as ``values()`` names them: ``"price"``, ``"brand"`` for the foreign key,
    ``"brand__name"``, or an annotation the serializer declares) and returns one value per row,
    in order. A per-row computation is ``return [f(row) for row in rows]``. On DRF's instance
    path the method is called with a one-row list built from the instance.

    ``self.context`` is the context of the render, so a per-user field costs one query per
    page, not one per row::

        @batch("id")
        def get_can_change(self, rows):
            user = self.context["request"].user
            granted = set(
                Grant.objects.filter(user=user, device__in=[row["id"] for row in rows])
                .values_list("device", flat=True)
            )
            return [row["id"] in granted for row in rows]
    """

    def decorate(method: Callable[..., Sequence[Any]]) -> Callable[[Any, Any], Any]:
        @functools.wraps(method)
        def per_instance(self: Any, instance: Any) -> Any:
            return method(self, [{column: _read(instance, column) for column in columns}])[0]

        setattr(per_instance, _BATCH, (method, columns))
        return requires(select=columns)(per_instance)

    return decorate


def _read(instance: Any, path: str) -> Any:
    """What ``values(path)`` holds for ``instance``: a foreign key as its raw value."""
    *through, last = path.split(LOOKUP_SEP)
    try:
        for name in through:
            instance = getattr(instance, name)
            if instance is None:
                return None
    except ObjectDoesNotExist:
        return None
    return getattr(instance, column_attname(type(instance), last) or last)


# The serializer context compiled fields see while a plan renders.

_context: ContextVar[Mapping[str, Any]] = ContextVar(
    "drf_scale_fast_context", default=MappingProxyType({})
)


class _CurrentContext(MutableMapping[str, Any]):
    """The ``context`` of the compiled serializer tree: that of the render in progress, which
    a list serializer's own ``to_representation()`` may write to, as to DRF's context dict."""

    def __getitem__(self, key: str) -> Any:
        return _context.get()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        cast("MutableMapping[str, Any]", _context.get())[key] = value

    def __delitem__(self, key: str) -> None:
        del cast("MutableMapping[str, Any]", _context.get())[key]

    def __iter__(self) -> Any:
        return iter(_context.get())

    def __len__(self) -> int:
        return len(_context.get())


# Converters: a column value to its representation, with the field's DRF semantics.


@dataclass(frozen=True)
class _PerRender:
    """A converter that depends on the render, such as on the current time zone."""

    make: Callable[[], Converter]


def _text(f: fields.CharField, model_field: Any) -> Converter | None:
    return None if isinstance(model_field, _TEXT) else str


def _integer(f: fields.IntegerField, model_field: Any) -> Converter | None:
    return None if isinstance(model_field, models.IntegerField) else int


def _big_integer(f: fields.IntegerField, model_field: Any) -> Converter | None:
    if getattr(f, "coerce_to_string", api_settings.COERCE_BIGINT_TO_STRING):
        return str
    return _integer(f, model_field)


def _float(f: fields.FloatField, model_field: Any) -> Converter | None:
    return None if isinstance(model_field, models.FloatField) else float


def _boolean(f: fields.BooleanField, model_field: Any) -> Converter | None:
    return None if isinstance(model_field, models.BooleanField) else f.to_representation


def _decimal(f: fields.DecimalField, model_field: Any) -> Converter | None:
    """DRF's quantize and format, with the exponent and context computed once."""
    if (
        not isinstance(model_field, models.DecimalField)
        or f.decimal_places is None
        or f.localize
        or f.normalize_output
    ):
        return f.to_representation
    exponent = decimal.Decimal(".1") ** f.decimal_places
    context = decimal.getcontext().copy()
    if f.max_digits is not None:
        context.prec = f.max_digits
    rounding = f.rounding
    if getattr(f, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING):
        return lambda value: f"{value.quantize(exponent, rounding, context):f}"
    return lambda value: value.quantize(exponent, rounding, context)


def _datetime(f: fields.DateTimeField, model_field: Any) -> Converter | _PerRender | None:
    """DRF's time zone handling and format; the time zone is resolved once per render."""
    output_format = getattr(f, "format", api_settings.DATETIME_FORMAT)
    if output_format is None:
        return None
    if not isinstance(model_field, models.DateTimeField):
        return f.to_representation
    iso = output_format.lower() == ISO_8601

    def make() -> Converter:
        zone = f.timezone if hasattr(f, "timezone") else f.default_timezone()

        def local(value: Any) -> Any:
            if zone is None or value.tzinfo is None:
                return f.enforce_timezone(value)  # DRF's own handling of the rare cases
            return value.astimezone(zone)

        if not iso:
            return lambda value: local(value).strftime(output_format)
        if getattr(zone, "key", zone) in _UTC_ZONES:
            # The database's UTC datetimes: orjson writes isoformat() with DRF's 'Z', faster.
            return lambda value: (
                orjson.dumps(value, option=orjson.OPT_UTC_Z)[1:-1].decode()
                if value.tzinfo is _UTC
                else _iso(local(value))
            )
        return lambda value: _iso(local(value))

    return _PerRender(make)


def _iso(value: Any) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _temporal(kind: type, setting: str) -> Callable[[Any, Any], Converter | None]:
    """DateField and TimeField: isoformat or strftime of values of the model field ``kind``."""

    def build(f: fields.Field, model_field: Any) -> Converter | None:
        output_format = getattr(f, "format", getattr(api_settings, setting))
        if output_format is None:
            return None
        if not isinstance(model_field, kind) or isinstance(model_field, models.DateTimeField):
            return f.to_representation
        if output_format.lower() == ISO_8601:
            return lambda value: value.isoformat()
        return lambda value: value.strftime(output_format)

    return build


def _uuid(f: fields.UUIDField, model_field: Any) -> Converter | None:
    if isinstance(model_field, models.UUIDField) and f.uuid_format == "hex_verbose":
        return str
    return f.to_representation


def _choice(f: fields.ChoiceField, model_field: Any) -> Converter | None:
    """Identity for text columns with text choices: DRF maps each value to itself."""
    textual = all(key == value for key, value in f.choice_strings_to_values.items())
    return None if textual and isinstance(model_field, _TEXT) else f.to_representation


def _json(f: fields.JSONField, model_field: Any) -> Converter | None:
    return f.to_representation if f.binary else None


def _identity(f: fields.Field, model_field: Any) -> Converter | None:
    return None


_CONVERTERS: dict[Any, Callable[[Any, Any], Converter | _PerRender | None]] = {
    fields.CharField.to_representation: _text,
    fields.IntegerField.to_representation: _integer,
    fields.FloatField.to_representation: _float,
    fields.BooleanField.to_representation: _boolean,
    fields.DecimalField.to_representation: _decimal,
    fields.DateTimeField.to_representation: _datetime,
    fields.DateField.to_representation: _temporal(models.DateField, "DATE_FORMAT"),
    fields.TimeField.to_representation: _temporal(models.TimeField, "TIME_FORMAT"),
    fields.UUIDField.to_representation: _uuid,
    fields.ChoiceField.to_representation: _choice,
    fields.JSONField.to_representation: _json,
    fields.ReadOnlyField.to_representation: _identity,
}
if hasattr(fields, "BigIntegerField"):  # DRF 3.17+
    _CONVERTERS[fields.BigIntegerField.to_representation] = _big_integer


def _output_field(expression: Any) -> Any:
    """The model field whose values an annotation has, when it can tell before a query."""
    try:
        return expression.output_field
    except (FieldError, AttributeError):
        return None


def _converter(f: fields.Field, model_field: Any) -> Converter | _PerRender | None:
    """How ``f`` represents a value of ``model_field`` (None: unknown); None: as it is.

    DRF's own field classes get equivalents precomputed here; any other field's own
    ``to_representation`` is called, since a value-sourced field receives the column value.
    """
    build = _CONVERTERS.get(type(f).to_representation)
    if build is not None:
        return build(f, model_field)
    return _PerRender(lambda: _fresh(f).to_representation)


def _fresh(f: FieldT) -> FieldT:
    """A copy of ``f`` bound where it is, for one render: a field of one's own may keep state
    on itself for a request (NetBox's caches its custom fields), as DRF builds its fields per
    request, and a plan outlives requests."""
    clone = copy.deepcopy(f)
    clone.bind(f.field_name, f.parent)  # type: ignore[attr-defined]
    return clone


# Field kinds DRF renders from the instance, compiled from its columns.

_FILE_CLASSES = ((FileDescriptor, FieldFile), (ImageFileDescriptor, ImageFieldFile))


def _plain_file(model_field: Any) -> bool:
    """A Django FileField or ImageField whose values are Django's files, named by the column."""
    kinds = (model_field.descriptor_class, model_field.attr_class)
    return isinstance(model_field, models.FileField) and kinds in _FILE_CLASSES


def _file(f: fields.FileField, model_field: Any) -> _PerRender:
    """DRF's FileField.to_representation from the file's name: the storage's URL, absolute
    with the request of the render, or the name; None for no file."""
    storage = model_field.storage

    def make() -> Converter:
        if not getattr(f, "use_url", api_settings.UPLOADED_FILES_USE_URL):
            return lambda name: name or None
        request = _context.get().get("request")
        if request is None:
            return lambda name: storage.url(name) if name else None
        absolute = request.build_absolute_uri
        return lambda name: absolute(storage.url(name)) if name else None

    return _PerRender(make)


class _Instance:
    """A stand-in for a model instance holding one column value, as a model field reads it."""


def _model_value(model_field: models.Field[Any, Any]) -> Converter:
    """DRF's ModelField.to_representation from the column value: the model field's own
    ``value_from_object()`` and ``value_to_string()``, given an instance holding the value."""
    attname = model_field.attname
    value_from_object = model_field.value_from_object
    value_to_string = model_field.value_to_string
    plain = type(model_field).value_from_object is models.Field.value_from_object

    def convert(value: Any) -> Any:
        if plain and is_protected_type(value):
            return value
        holder = _Instance()
        holder.__dict__[attname] = value
        instance = cast("models.Model", holder)  # all the model field reads of it
        value = value_from_object(instance)
        return value if is_protected_type(value) else value_to_string(instance)

    return convert


# Placeholder keys a URL pattern must turn into themselves for links to be substituted.
_LINK_KEYS = (1234567890123456789, 0)


def _hyperlink(f: relations.HyperlinkedRelatedField) -> Callable[[], Callable[[Any, Any], Any]]:
    """DRF's hyperlink of an object given its key and ``lookup_field`` value, per render.

    The URL of a non-negative integer is substituted into a URL reversed once per render with
    placeholder keys (when the pattern turns both into themselves); any other value, a
    versioning scheme on the request, or a context without a request go through DRF's field.
    """
    lookup = f.lookup_field

    def make() -> Callable[[Any, Any], Any]:
        context = _context.get()

        def drf(key: Any, value: Any) -> Any:
            return f.to_representation(SimpleNamespace(**{"pk": key, lookup: value}))

        if "request" not in context:
            return lambda key, value: None if key is None else drf(key, value)
        request = context["request"]
        if getattr(request, "versioning_scheme", None) is not None:
            return lambda key, value: None if key is None else drf(key, value)
        link_format = context.get("format")
        if link_format and f.format and f.format != link_format:
            link_format = f.format
        template: tuple[str, str] | None = None
        substitute = True

        def url(key: Any) -> str:
            obj = cast("models.Model", SimpleNamespace(**{"pk": key, lookup: key}))
            return str(f.get_url(obj, cast("str", f.view_name), request, link_format))

        def link(key: Any, value: Any) -> Any:
            nonlocal template, substitute
            if key is None or key == "":
                return None
            if substitute and type(value) is int and value >= 0:
                if template is None:
                    try:
                        first, second = (url(each) for each in _LINK_KEYS)
                    except NoReverseMatch:
                        first = second = ""
                    parts = first.split(str(_LINK_KEYS[0]))
                    if len(parts) != 2 or second != str(_LINK_KEYS[1]).join(parts):
                        substitute = False
                        return drf(key, value)
                    template = (parts[0], parts[1])
                return f"{template[0]}{value}{template[1]}"
            return drf(key, value)

        return link

    return make


_LINK_METHODS = ("to_representation", "get_url", "get_attribute", "use_pk_only_optimization")


def _link_field(f: Any) -> TypeGuard[relations.HyperlinkedRelatedField]:
    """DRF's own HyperlinkedRelatedField or HyperlinkedIdentityField, not a subclass's links."""
    return isinstance(f, relations.HyperlinkedRelatedField) and not any(
        _defined_outside_drf(f, method) for method in _LINK_METHODS
    )


# The compiled form: queries, their to-many children and batches, and generated transforms.


@dataclass
class _Child:
    """A to-many relation of a query's rows: one query per render, grouped by parent key."""

    name: str  # the mapping's variable in the parent's transform
    parent_key: str  # the parent rows' column holding the key
    back: str  # the lookup from the related rows to that key
    base: QuerySet
    query: _Query
    path: str  # the relation's prefetch_related() path from the root rows
    declared: bool = False  # its rows are a @requires Prefetch's queryset, not the relation's

    def fetch(
        self, rows: list[Row], using: str | None, instances: Sequence[models.Model] = ()
    ) -> Mapping[Any, list[Any]]:
        cached = self.prefetched(rows, using, instances)
        if cached is not None:
            return cached
        keys = {row[self.parent_key] for row in rows}
        keys.discard(None)
        if not keys:
            return {}
        # _db: the alias the queryset was bound to, private and absent from django-stubs
        queryset = self.base.using(self.base._db or using)  # type: ignore[attr-defined]
        queryset = QueryPlan(annotations=self.query.annotations).apply(queryset)
        queryset = queryset.values(*self.query.columns, **{_PARENT: F(self.back)})
        # Django's prefetch filter, in place: a sliced queryset gets a window per parent.
        related = list(_filter_prefetch_queryset(queryset, self.back, list(keys)))
        grouped: defaultdict[Any, list[Any]] = defaultdict(list)
        for row, item in zip(related, self.query.render(related, using), strict=True):
            grouped[row[_PARENT]].append(item)
        return grouped

    def prefetched(
        self, rows: list[Row], using: str | None, instances: Sequence[models.Model]
    ) -> Mapping[Any, list[Any]] | None:
        """The related rows of ``rows`` rendered from what the view's queryset prefetched
        onto their ``instances`` (what DRF renders), without a query; None when they are not
        all there, or their columns are not all loaded on them."""
        columns = tuple(self.query.columns)
        if not instances or LOOKUP_SEP in self.path or self.query.annotations:
            return None
        if self.declared:  # its own rows: a prefetch of the plain relation holds others
            return None
        if any(LOOKUP_SEP in column for column in columns):  # joins the prefetch did not make
            return None
        lists = []
        for obj in instances:
            loaded = getattr(getattr(obj, self.path, None), "all", None)
            cached = None if loaded is None else loaded()._result_cache
            if cached is None:
                return None
            lists.append(cached)
        items = [item for each in lists for item in each]
        if any(item.get_deferred_fields() for item in items):
            return None
        read = _row_reader(self.base.model, columns, ())
        rendered = iter(self.query.render([read(item) for item in items], using, items))
        return {
            row[self.parent_key]: [next(rendered) for _ in each]
            for row, each in zip(rows, lists, strict=True)
        }


@dataclass
class _Batch:
    """A ``@batch`` method field: called once per render with the rows it applies to."""

    name: str
    where: str
    method: Callable[[list[Row]], Sequence[Any]]
    columns: Mapping[str, str]  # the method's row keys -> the query's columns
    present: str | None  # a column that is None on rows where the serializer is absent
    own: Callable[..., Sequence[Any]] | None = None  # a root method, unbound

    def run(self, rows: list[Row]) -> list[Any]:
        present = self.present
        chosen = rows if present is None else [row for row in rows if row[present] is not None]
        method, built = self.method, _built.get()
        if self.own is not None and built is not None:  # the request's serializer's method
            method = functools.partial(self.own, built)
        values = list(method([{k: row[c] for k, c in self.columns.items()} for row in chosen]))
        if len(values) != len(chosen):
            raise ValueError(f"{self.where} returned {len(values)} values for {len(chosen)} rows")
        if present is None:
            return values
        found = iter(values)
        return [next(found) if row[present] is not None else None for row in rows]


# The serializer a render's instance fields come from (a view's, built for the request).
_built: ContextVar[BaseSerializer | None] = ContextVar("drf_scale_fast_built", default=None)


@dataclass
class _Instances:
    """The root's fields that render from model instances: DRF's own fields, on the
    instances the page was loaded as (a partial plan's rows are read from them)."""

    name: str
    fields: tuple[tuple[str, fields.Field], ...]  # (name, field) of the compiled serializer

    def run(self, instances: Sequence[models.Model]) -> list[tuple[Row, ...]]:
        """Per instance, one dict per field: ``{name: representation}``, or empty if skipped."""
        built = _built.get()
        chosen = self.fields
        if built is not None:  # the request's own serializer: its fields' state, not the plan's
            own = cast("Serializer[Any]", built).fields
            chosen = tuple((name, own[name]) for name, _ in self.fields)
        return [tuple(_represent(f, name, obj) for name, f in chosen) for obj in instances]


def _row_reader(
    model: type[models.Model], columns: Sequence[str], optional: Sequence[str]
) -> Callable[[models.Model], Row]:
    """What ``values(*columns)`` returns for a row, read from its instance (loaded with the
    relations of the columns joined); ``optional`` attributes only where the instance has
    them (a view's annotations)."""
    getters = [(column, _column_getter(model, column)) for column in columns]

    def read(obj: models.Model) -> Row:
        row = {column: get(obj) for column, get in getters}
        for name in optional:
            if hasattr(obj, name):
                row[name] = getattr(obj, name)
        return row

    return read


def _column_getter(model: type[models.Model], path: str) -> Callable[[Any], Any]:
    """The value ``values(path)`` reads, from an instance: through to-one relations (None
    when one is absent), then the column's loaded value (a file's name, not its FieldFile)."""
    *through, last = path.split(LOOKUP_SEP)
    accessors = []
    for name in through:
        step = relation(model, name)
        assert step is not None and not step.many  # compiled columns join to-one relations
        accessors.append(step.accessor)
        model = step.related_model
    attname = model._meta.pk.attname if last == "pk" else column_attname(model, last) or last

    def get(obj: Any) -> Any:
        for accessor in accessors:
            try:
                obj = getattr(obj, accessor)
            except ObjectDoesNotExist:  # an absent reverse one-to-one
                return None
            if obj is None:
                return None
        loaded = obj.__dict__
        return loaded[attname] if attname in loaded else getattr(obj, attname)

    return get


def _joins(columns: Iterable[str]) -> tuple[str, ...]:
    """The ``select_related`` paths the columns of a ``values()`` query go through."""
    paths = (column.rsplit(LOOKUP_SEP, 1)[0] for column in columns if LOOKUP_SEP in column)
    return tuple(dict.fromkeys(paths))


def _represent(f: fields.Field, name: str, instance: Any) -> Row:
    """DRF's Serializer.to_representation for one field of ``instance``."""
    try:
        attribute = f.get_attribute(instance)
    except fields.SkipField:
        return {}
    check = attribute.pk if isinstance(attribute, relations.PKOnlyObject) else attribute
    return {name: None if check is None else f.to_representation(attribute)}


@dataclass
class _Query:
    """One query of a plan: its columns and annotations, what it fetches next, its transform."""

    columns: dict[str, None] = field(default_factory=dict)  # an ordered set
    annotations: dict[str, Any] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    per_render: dict[str, Callable[[], Callable[..., Any]]] = field(default_factory=dict)
    children: list[_Child] = field(default_factory=list)
    batches: list[_Batch] = field(default_factory=list)
    loaders: list[_Instances] = field(default_factory=list)  # the root's instance fields
    view_annotations: dict[str, None] = field(default_factory=dict)  # read when annotated
    transform: Callable[..., list[Any]] | None = None
    counter: Iterator[int] = field(default_factory=itertools.count)

    def name(self, kind: str) -> str:
        """A fresh name in the transform's namespace."""
        return f"_{kind}{next(self.counter)}"

    def read(self, column: str) -> str:
        """The code reading ``column`` from the row ``r``."""
        self.columns[column] = None
        return f"r[{column!r}]"

    def convert(self, converter: Converter | _PerRender | None, code: str, nullable: bool) -> str:
        """The code applying ``converter`` to the value ``code``; None stays None, as in DRF."""
        if converter is None:
            return code
        if isinstance(converter, _PerRender):
            name = self.name("p")
            self.per_render[name] = converter.make
        else:
            name = self.name("c")
            self.constants[name] = converter
        return (
            f"({name}({code}) if {code} is not None else None)" if nullable else f"{name}({code})"
        )

    def call(self, make: Callable[[], Callable[..., Any]], *codes: str) -> str:
        """The code calling the function ``make()`` returns once per render on ``codes``."""
        name = self.name("p")
        self.per_render[name] = make
        return f"{name}({', '.join(codes)})"

    def compile(self, expression: str, where: str) -> None:
        """Generate ``transform(rows, **arguments)``: the representation of each row."""
        batches = [*(each.name for each in self.batches), *(each.name for each in self.loaders)]
        params = [*self.per_render, *(child.name for child in self.children), *batches]
        signature = ", ".join(["rows", "*", *params] if params else ["rows"])
        targets = ", ".join(["r", *(f"_v{name}" for name in batches)])
        rows = f"zip(rows, {', '.join(batches)})" if batches else "rows"
        source = f"def transform({signature}):\n    return [{expression} for {targets} in {rows}]"
        namespace = dict(self.constants)
        exec(compile(source, f"<drf_scale read plan {where}>", "exec"), namespace)
        self.transform = namespace["transform"]

    def render(
        self, rows: list[Row], using: str | None, instances: Sequence[models.Model] = ()
    ) -> list[Any]:
        """Fetch the children and run the batches of ``rows`` (read from ``instances`` when
        some fields render from them), then transform them."""
        assert self.transform is not None
        arguments: dict[str, Any] = {name: make() for name, make in self.per_render.items()}
        for child in self.children:
            arguments[child.name] = child.fetch(rows, using, instances)
        for each in self.batches:
            arguments[each.name] = each.run(rows)
        for loader in self.loaders:
            arguments[loader.name] = loader.run(instances)
        return self.transform(rows, **arguments)

    def state(self) -> tuple[Any, ...]:
        """What compiling a field adds to the query, to undo when the field does not compile."""
        return (
            dict(self.columns),
            dict(self.annotations),
            dict(self.per_render),
            len(self.children),
            len(self.batches),
        )

    def restore(self, state: tuple[Any, ...]) -> None:
        columns, annotations, per_render, children, batches = state
        self.columns, self.annotations, self.per_render = columns, annotations, per_render
        del self.children[children:], self.batches[batches:]


@dataclass(frozen=True)
class _Scope:
    """Where a serializer reads: a query, its model, and the join path to its rows there."""

    query: _Query
    model: type[models.Model]
    prefix: str = ""  # the values() path of the join, "brand__"
    outer: bool = False  # reached through a join that may find no row: any column may be None
    present: str | None = None  # a column that is None when the joined row is absent
    aliases: Mapping[str, str] = field(default_factory=dict)  # columns the parent row holds

    def column(self, name: str) -> str:
        return self.aliases.get(name, self.prefix + name)

    def join(self, step: Relation) -> _Scope:
        """The scope of the to-one ``step``'s row, joined into the same query."""
        prefix = f"{self.prefix}{step.name}{LOOKUP_SEP}"
        model = step.related_model
        if not step.forward:  # a reverse one-to-one
            return _Scope(self.query, model, prefix, True, prefix + "pk")
        key = self.column(step.name)  # the foreign key holds the target's value: no join
        aliases = dict.fromkeys(step.key_names, key)
        present = key if step.null else self.present
        return _Scope(self.query, model, prefix, self.outer or step.null, present, aliases)


def _defined_outside_drf(obj: Any, name: str) -> bool:
    """Whether the class of ``obj`` gets method ``name`` from code outside DRF."""
    return _class_defines_outside_drf(type(obj), name)


def _class_defines_outside_drf(cls: type, name: str) -> bool:
    for klass in cls.__mro__:
        if name in vars(klass):
            return not klass.__module__.startswith("rest_framework.")
    return False


def _postprocess(serializer: BaseSerializer) -> Callable[[Any], Any] | None:
    """The method ``compiled_postprocess`` names on ``serializer``: its ``to_representation()``
    only post-processes what DRF's returns (``return self.shape(super().to_representation(x))``).
    """
    name = getattr(serializer, "compiled_postprocess", None)
    method = getattr(serializer, name, None) if isinstance(name, str) else None
    if name is not None and not callable(method):
        raise TypeError(f"{_kind(serializer)}.compiled_postprocess names no method: {name!r}")
    return method


def _own_representation(serializer: BaseSerializer) -> bool:
    """Whether ``serializer`` has its own ``to_representation()`` and declares no
    ``compiled_postprocess`` for it."""
    return (
        _defined_outside_drf(serializer, "to_representation") and _postprocess(serializer) is None
    )


# Methods a compiled serializer must have from DRF: the compiler reads what DRF's would do.
_DRF_ONLY_METHODS = ("to_representation", "get_fields", "__init__")


class _PlannedList(ListSerializer):
    """DRF's ListSerializer as a list serializer's own ``to_representation()`` reaches it
    through ``super()``: the page's instances (or some of them) render through the plan."""

    _planned: tuple[Sequence[models.Model], Callable[[list[Any]], list[Any]]]

    def to_representation(self, data: Any) -> list[Any]:
        page, render = self._planned
        loaded = {id(obj) for obj in page}
        if isinstance(data, list | tuple) and all(id(obj) in loaded for obj in data):
            return render(list(data))
        return super().to_representation(data)  # other objects: DRF renders them


@functools.cache
def _around(list_class: type[ListSerializer[Any]]) -> type[_PlannedList]:
    """``list_class`` with ``_PlannedList`` as what its ``super()`` reaches."""
    names = {"__module__": list_class.__module__, "__qualname__": list_class.__qualname__}
    return type(list_class.__name__, (list_class, _PlannedList), names)


def _drf_field(obj: Any, kind: type[FieldT]) -> TypeGuard[FieldT]:
    """An instance of ``kind`` that represents values as DRF's class does."""
    return isinstance(obj, kind) and not _defined_outside_drf(obj, "to_representation")


_RELATED_HINT = "use a nested serializer, a PrimaryKeyRelatedField or a SlugRelatedField"


def _declare_reads(f: fields.Field) -> str:
    """The hint for a related field of one's own: declare what it reads."""
    if not _defined_outside_drf(f, "to_representation"):
        return ""
    return ", or name the attributes its to_representation() reads in compiled_reads"


def _kind(obj: Any) -> str:
    """The class name a reason shows for a field or serializer."""
    return type(obj).__name__


@dataclass
class _Split:
    """The root serializer's fields: those compiled, those rendered from instances."""

    name: str  # the instance loader's name in the root's transform
    compiled: list[tuple[str, fields.Field]] = field(default_factory=list)
    instance: list[tuple[str, fields.Field]] = field(default_factory=list)


class _Compiler:
    """One walk of a serializer tree into code, recording each field it could not compile.

    A reason reads ``"<path>: <field class> — <why, in terms of what the user wrote>"``.
    """

    def __init__(self, root: BaseSerializer | None = None) -> None:
        self.reasons: list[str] = []
        self.root = root  # the serializer whose @batch methods a bound plan rebinds

    def fail(self, where: str, f: Any, why: str) -> str:
        self.reasons.append(f"{where}: {_kind(f)} — {why}")
        return "None"

    def serializer(
        self, serializer: BaseSerializer, scope: _Scope, where: str, split: _Split | None = None
    ) -> str:
        """The code building ``serializer``'s dict from the row ``r``.

        With ``split`` (the root), a field that does not compile renders from the instance.
        """
        for method in _DRF_ONLY_METHODS if split is None else ():
            if method == "to_representation" and not _own_representation(serializer):
                continue  # DRF's, or its compiled_postprocess applies to the compiled dict
            if _defined_outside_drf(serializer, method):
                why = f"{_kind(serializer)}.{method}() is its own code, which needs instances"
                return self.fail(where, serializer, why)
        declared: dict[str, Prefetch] = {}
        for hint in class_hints(serializer):
            if hint.annotate and scope.prefix:
                why = (
                    "its @requires annotations would be joined into its parent's query; "
                    "declare them on the top serializer"
                )
                self.fail(where, serializer, why)
            scope.query.annotations.update(hint.annotate)
            for lookup in hint.prefetch:
                if isinstance(lookup, Prefetch):
                    declared[lookup.to_attr or lookup.prefetch_through] = lookup
        # Only a Serializer has fields: anything else raises AttributeError here, as it always
        # did, and compile_read_plan falls back to DRF.
        serializer_fields = cast("Serializer[Any]", serializer).fields
        items = []
        for name, serializer_field in serializer_fields.items():
            if serializer_field.write_only:
                continue
            path = f"{where}.{name}"
            state, before = scope.query.state(), len(self.reasons)
            try:
                items.append(self.field(serializer_field, scope, declared, path))
            except Exception as exc:  # one field's error: the others still get their reasons
                self.fail(path, serializer_field, f"compiling it raised {exc!r}")
            if split is None:
                continue
            if len(self.reasons) == before:
                split.compiled.append((name, serializer_field))
                continue
            scope.query.restore(state)  # what the field's code would have read
            items[len(split.compiled) + len(split.instance) :] = [
                f"**_v{split.name}[{len(split.instance)}]"
            ]
            split.instance.append((name, serializer_field))
        code = "{" + ", ".join(items) + "}"
        shape = _postprocess(serializer) if split is None else None  # the root's: by the plan
        if shape is not None and _defined_outside_drf(serializer, "to_representation"):
            name = scope.query.name("s")
            scope.query.constants[name] = shape
            return f"{name}({code})"
        return code

    def field(
        self, f: fields.Field, scope: _Scope, declared: Mapping[str, Prefetch], where: str
    ) -> str:
        """The dict item of ``f``: ``'key': code``, or an unpacked dict when DRF may skip it."""
        key = repr(f.field_name)
        if isinstance(f, fields.SerializerMethodField):
            return f"{key}: {self.method(f, scope, where)}"
        if isinstance(f, relations.HyperlinkedRelatedField) and not _link_field(f):
            own = [m for m in _LINK_METHODS if _defined_outside_drf(f, m)]
            why = f"{_kind(f)} defines its own {', '.join(f'{m}()' for m in own)}"
            return f"{key}: {self.fail(where, f, f'{why}, which reads the instance')}"
        if isinstance(f, relations.HyperlinkedIdentityField):
            return f"{key}: {self.link(f, scope, pk_attname(scope.model), where)}"
        if isinstance(f, fields.ModelField) and not any(
            _defined_outside_drf(f, m) for m in ("to_representation", "get_attribute")
        ):
            return f"{key}: {self.model_field(f, scope, where)}"
        if f.source == "*":
            if isinstance(f, Serializer):
                return f"{key}: {self.serializer(f, scope, where)}"
            why = f"source='*' hands the whole instance to {_kind(f)}.to_representation()"
            return f"{key}: {self.fail(where, f, why)}"
        if type(f).get_attribute not in _GET_ATTRIBUTE:
            why = f"{_kind(f)}.get_attribute() is its own code, which reads the instance"
            return f"{key}: {self.fail(where, f, why)}"
        if self.view_annotation(f, scope, declared):
            return self.annotated(f, key, scope)
        *through, last = f.source_attrs
        inner = scope
        for name in through:
            step = relation(inner.model, name)
            model = inner.model.__name__
            if step is None or step.many:
                why = f"source {f.source!r}: {model}.{name} is no to-one relation"
                return f"{key}: {self.fail(where, f, why)}"
            if not step.forward:
                why = (
                    f"source {f.source!r} goes through the reverse one-to-one {model}.{name}; "
                    "render it with a nested serializer"
                )
                return f"{key}: {self.fail(where, f, why)}"
            inner = inner.join(step)
        code = self.value(f, inner, last, declared if not through else {}, where)
        if inner.present == scope.present:
            return f"{key}: {code}"
        # A null relation inside a dotted source: DRF's get_attribute() meets an AttributeError.
        assert inner.present is not None  # joins only set a column: it differs from scope's
        present = scope.query.read(inner.present)
        if f.default is not fields.empty:
            why = f"source {f.source!r} crosses a nullable relation and the field has a default"
            return f"{key}: {self.fail(where, f, why)}"
        if f.allow_null:
            return f"{key}: ({code} if {present} is not None else None)"
        if not f.required:
            return f"**({{{key}: {code}}} if {present} is not None else {{}})"
        why = (
            f"source {f.source!r} crosses a nullable relation and the field is required; "
            "give it allow_null=True or required=False"
        )
        return f"{key}: {self.fail(where, f, why)}"

    def view_annotation(
        self, f: fields.Field, scope: _Scope, declared: Mapping[str, Prefetch]
    ) -> bool:
        """Whether ``f``, a value field of the root, reads what only the view's queryset can
        hold: an annotation, which DRF reads as an attribute of the instance."""
        if f.parent is not self.root or len(f.source_attrs) != 1 or scope.prefix:
            return False
        if isinstance(f, BaseSerializer | relations.RelatedField | relations.ManyRelatedField):
            return False
        (name,) = f.source_attrs
        known = name in declared or name in scope.query.annotations
        return not known and f.default is fields.empty and not hasattr(scope.model, name)

    def annotated(self, f: fields.Field, key: str, scope: _Scope) -> str:
        """The item of a view annotation: in the rows when the view's queryset annotates it
        (``ReadPlan.rows`` carries it), else as DRF treats a missing attribute."""
        query = scope.query
        name = f.source_attrs[0]
        query.view_annotations[name] = None
        code = query.convert(_converter(f, None), f"r[{name!r}]", True)
        if f.required:  # DRF raises, as this does
            return f"{key}: {code}"
        if f.allow_null:
            return f"{key}: ({code} if {name!r} in r else None)"
        return f"**({{{key}: {code}}} if {name!r} in r else {{}})"

    def value(
        self,
        f: fields.Field,
        scope: _Scope,
        name: str,
        declared: Mapping[str, Prefetch],
        where: str,
    ) -> str:
        """The code of ``f``'s representation of attribute ``name`` of the scope's rows."""
        model = scope.model.__name__
        if name in declared:
            lookup = declared[name]
            step = relation(scope.model, lookup.prefetch_through)
            if step is None or not step.many:
                through = lookup.prefetch_through
                why = f"@requires Prefetch({through!r}): {model}.{through} is no to-many relation"
                return self.fail(where, f, why)
            return self.many(f, scope, step, lookup.queryset, where)
        if not scope.prefix and name in scope.query.annotations:
            output = _output_field(scope.query.annotations[name])
            return scope.query.convert(_converter(f, output), scope.query.read(name), True)
        found = attribute(scope.model, name)
        if found is None:
            if hasattr(scope.model, name):
                why = (
                    f"{model}.{name} is a property or method, which needs the instance; "
                    "declare it as an annotation with @requires(annotate=...)"
                )
                return self.fail(where, f, why)
            why = f"{name!r} is no field of {model} nor an annotation declared with @requires"
            return self.fail(where, f, why)
        if isinstance(found, ModelField) and found.column:
            return self.column(f, scope, name, found, where)
        if isinstance(found, ModelField):
            why = f"{model}.{name} is a generic foreign key, which the compiler cannot join"
            return self.fail(where, f, why)
        if not found.plannable:
            why = f"{model}.{name} is a {found.kind.value}, which the compiler cannot join"
            return self.fail(where, f, why)
        if found.many:
            return self.many(f, scope, found, None, where)
        return self.one(f, scope, found, where)

    def column(
        self, f: fields.Field, scope: _Scope, name: str, found: ModelField, where: str
    ) -> str:
        model = scope.model.__name__
        if isinstance(f, BaseSerializer | relations.RelatedField | relations.ManyRelatedField):
            why = f"it renders a related instance, but {model}.{name} is a column"
            return self.fail(where, f, why)
        query = scope.query
        nullable = scope.outer or found.field.null
        if _drf_field(f, fields.FileField):
            if not _plain_file(found.field):
                why = f"{model}.{name} ({_kind(found.field)}) is no Django FileField or ImageField"
                return self.fail(where, f, why)
            return query.convert(_file(f, found.field), query.read(scope.column(name)), nullable)
        if type(getattr(scope.model, found.attname, None)) not in _PLAIN_DESCRIPTORS:
            why = (
                f"{model}.{name} ({_kind(found.field)}) has its own descriptor: "
                "the instance does not hold the column value"
            )
            return self.fail(where, f, why)
        return query.convert(_converter(f, found.field), query.read(scope.column(name)), nullable)

    def model_field(self, f: fields.ModelField, scope: _Scope, where: str) -> str:
        """DRF's ModelField: the model field's own conversion of its column value."""
        model_field = f.model_field
        found = attribute(scope.model, model_field.name)
        model = scope.model.__name__
        if not (
            isinstance(found, ModelField)
            and found.field is model_field
            and found.column
            and found.concrete
            and model_field.remote_field is None
        ):
            why = f"its model field {model_field.name!r} is no column of {model}"
            return self.fail(where, f, why)
        if type(getattr(scope.model, found.attname, None)) not in _PLAIN_DESCRIPTORS:
            why = (
                f"{model}.{found.name} ({_kind(model_field)}) has its own descriptor: "
                "the instance does not hold the column value"
            )
            return self.fail(where, f, why)
        query = scope.query
        return query.convert(_model_value(model_field), query.read(scope.column(found.name)), False)

    def link(
        self, f: relations.HyperlinkedRelatedField, scope: _Scope, key: str, where: str
    ) -> str:
        """DRF's hyperlink to the rows of ``scope``, from their ``key`` and lookup columns."""
        query = scope.query
        key_code = query.read(scope.column(key))
        lookup = f.lookup_field
        if lookup == "pk":
            return query.call(_hyperlink(f), key_code, key_code)
        found = attribute(scope.model, lookup)
        if (
            not isinstance(found, ModelField)
            or not (found.column and found.concrete)
            or type(getattr(scope.model, found.attname, None)) not in _PLAIN_DESCRIPTORS
        ):
            why = f"lookup_field {lookup!r} is no column of {scope.model.__name__}"
            return self.fail(where, f, why)
        return query.call(_hyperlink(f), key_code, query.read(scope.column(found.name)))

    def one(self, f: fields.Field, scope: _Scope, step: Relation, where: str) -> str:
        """A to-one relation rendered by a nested serializer, its key, a slug or a link."""
        inner = scope.join(step)
        query = scope.query
        if isinstance(f, Serializer):
            code = self.serializer(f, inner, where)
            if inner.present == scope.present:
                return code
            assert inner.present is not None  # join() only sets a column: it differs from scope's
            return f"({code} if {query.read(inner.present)} is not None else None)"
        if _drf_field(f, relations.PrimaryKeyRelatedField):
            # DRF reads the foreign key's raw value, or the reverse one-to-one row's key.
            key = query.read(scope.column(step.name) if step.forward else inner.column("pk"))
            if f.pk_field is None:
                return key
            return query.convert(f.pk_field.to_representation, key, True)
        if _drf_field(f, relations.SlugRelatedField):
            return self.slug(f, inner, where)
        model = scope.model.__name__
        if _link_field(f):
            if not step.forward:
                why = (
                    f"{model}.{step.name} is a reverse one-to-one; link it from a nested serializer"
                )
                return self.fail(where, f, why)
            if f.lookup_field == "pk":
                # DRF's PKOnlyObject: the foreign key's raw value.
                key = query.read(scope.column(step.name))
                return query.call(_hyperlink(f), key, key)
            return self.link(f, inner, pk_attname(inner.model), where)
        reads = self.declared_reads(f, inner, where)
        if reads is not None:
            if inner.present == scope.present:
                return reads
            assert inner.present is not None  # join() only sets a column: it differs from scope's
            return f"({reads} if {query.read(inner.present)} is not None else None)"
        why = (
            f"it renders the related {step.related_model.__name__} instance "
            f"of {model}.{step.name}; {_RELATED_HINT}{_declare_reads(f)}"
        )
        return self.fail(where, f, why)

    def declared_reads(self, f: fields.Field, scope: _Scope, where: str) -> str | None:
        """A related field of its own whose ``to_representation()`` reads only the attributes
        it names in ``compiled_reads``: called with an object holding just those columns of
        the related row. None: it declares none."""
        names = getattr(f, "compiled_reads", None)
        if not isinstance(f, relations.RelatedField) or names is None:
            return None
        if type(f).get_attribute is not relations.RelatedField.get_attribute:
            why = f"{_kind(f)}.get_attribute() is its own code, which reads the instance"
            return self.fail(where, f, why)
        codes = []
        for name in names:
            found = attribute(scope.model, name)
            if not (isinstance(found, ModelField) and found.column and found.concrete):
                why = f"compiled_reads names {name!r}, no column of {scope.model.__name__}"
                return self.fail(where, f, why)
            codes.append(scope.query.read(scope.column(found.name)))
        keys = tuple(names)

        def make() -> Callable[..., Any]:
            represent = _fresh(f).to_representation
            return lambda *values: represent(
                SimpleNamespace(**dict(zip(keys, values, strict=True)))
            )

        return scope.query.call(make, *codes)

    def slug(self, f: relations.SlugRelatedField, scope: _Scope, where: str) -> str:
        *through, last = f.slug_field.split(LOOKUP_SEP)
        for name in through:
            step = relation(scope.model, name)
            if step is None or step.many:
                why = f"slug_field {f.slug_field!r} is no to-one path of {scope.model.__name__}"
                return self.fail(where, f, why)
            scope = scope.join(step)
        return scope.query.read(scope.column(last))

    def many(
        self,
        f: fields.Field,
        scope: _Scope,
        step: Relation,
        queryset: QuerySet | None,
        where: str,
    ) -> str:
        """A to-many relation: a child query keyed by a column of the parent rows."""
        before = len(self.reasons)
        if _defined_outside_drf(f, "to_representation"):
            why = f"{_kind(f)}.to_representation() is its own code, which needs instances"
            return self.fail(where, f, why)
        relation_name = f"{scope.model.__name__}.{step.name}"
        if isinstance(f, ListSerializer):
            assert f.child is not None  # ListSerializer.__init__ asserts it too
            item: fields.Field = f.child
        elif isinstance(f, relations.ManyRelatedField):
            item = f.child_relation
        else:
            why = f"{relation_name} is a to-many relation: render it with many=True"
            return self.fail(where, f, why)
        own_rows = queryset is not None
        if queryset is None:
            queryset = step.related_model._default_manager.all()
        child = _Query()
        inner = _Scope(child, queryset.model)
        if isinstance(item, Serializer):
            code = self.serializer(item, inner, f"{where}[]")
        elif _drf_field(item, relations.PrimaryKeyRelatedField):
            key = child.read(pk_attname(queryset.model))
            converter = item.pk_field.to_representation if item.pk_field is not None else None
            code = child.convert(converter, key, False)
        elif _drf_field(item, relations.SlugRelatedField):
            code = self.slug(item, inner, f"{where}[]")
        elif _link_field(item):
            code = self.link(item, inner, pk_attname(queryset.model), f"{where}[]")
        elif (declared := self.declared_reads(item, inner, f"{where}[]")) is not None:
            code = declared
        else:
            why = (
                f"it renders each related {queryset.model.__name__} instance of {relation_name}; "
                f"{_RELATED_HINT}{_declare_reads(item)}"
            )
            return self.fail(where, item, why)
        if len(self.reasons) > before:
            return "None"
        child.compile(code, where)
        parent_key = scope.column(step.parent_key)
        name = scope.query.name("m")
        path = scope.prefix + step.accessor
        scope.query.children.append(
            _Child(name, parent_key, step.back, queryset, child, path, own_rows)
        )
        return f"{name}.get({scope.query.read(parent_key)}, [])"

    def method(self, f: fields.SerializerMethodField, scope: _Scope, where: str) -> str:
        """A ``@batch`` method field: its value for the row, from one call per render."""
        spec = getattr(getattr(f.parent, f.method_name, None), _BATCH, None)
        if spec is None:
            why = (
                f"{f.method_name}() runs once per instance; "
                "decorate it with @drf_scale.fast.batch(columns...)"
            )
            return self.fail(where, f, why)
        method, paths = spec
        columns = {}
        for path in paths:
            column = self.batch_column(scope, path)
            if column is None:
                why = (
                    f"@batch column {path!r} of {f.method_name}() is no column, "
                    "to-one path or declared annotation"
                )
                return self.fail(where, f, why)
            columns[path] = column
        query = scope.query
        for column in [*columns.values(), *([scope.present] if scope.present else [])]:
            query.read(column)
        name = query.name("b")
        bound = functools.partial(method, f.parent)
        own = method if f.parent is self.root else None
        query.batches.append(_Batch(name, where, bound, columns, scope.present, own))
        return f"_v{name}"

    def batch_column(self, scope: _Scope, path: str) -> str | None:
        """The column of ``path`` (to-one relations, then a column or annotation), if it is one."""
        *through, last = path.split(LOOKUP_SEP)
        for name in through:
            step = relation(scope.model, name)
            if step is None or step.many:
                return None
            scope = scope.join(step)
        if not scope.prefix and last in scope.query.annotations:
            return last
        if column_attname(scope.model, last) is None:
            return None
        return scope.column(last)


# Plans.


@dataclass(frozen=True, eq=False)
class ReadPlan:
    """How ``serializer_class`` renders querysets: compiled, or through DRF and why.

    A plan may be partial: ``instance_fields`` render through their own DRF fields from model
    instances, and ``compiled_fields`` from rows read off the same instances, loaded in one
    planned query (a whole plan reads ``values()`` rows); ``fallback_reasons`` names each
    field that does not compile and why.
    """

    serializer_class: type[BaseSerializer]
    fallback_reasons: tuple[str, ...] = ()
    _root: _Query | None = field(default=None, repr=False)
    compiled_fields: tuple[str, ...] = ()
    instance_fields: tuple[str, ...] = ()
    _serializer: BaseSerializer | None = field(default=None, repr=False)
    _shape: Callable[[Any], Any] | None = field(default=None, repr=False)
    _list_shape: Callable[[Any], Any] | None = field(default=None, repr=False)
    # How to load a page as instances and read the rows off them; whether rows() does.
    _load: QueryPlan | None = field(default=None, repr=False)
    _read_row: Callable[[models.Model], Row] | None = field(default=None, repr=False)
    _pages_instances: bool = field(default=False, repr=False)
    # A list serializer whose own to_representation() runs around the plan's rendering.
    _listing: ListSerializer[Any] | None = field(default=None, repr=False)

    @property
    def compiled(self) -> bool:
        """Whether the plan runs (every field compiled, or some rendering from instances)."""
        return self._root is not None

    def describe(self) -> str:
        """How the plan renders its serializer, in a sentence (for checks and the audit)."""
        name = self.serializer_class.__name__
        if self._root is None:
            return f"{name} renders through DRF, not its compiled plan"
        if self.instance_fields:
            return (
                f"{name} renders {', '.join(self.instance_fields)} through DRF from instances "
                f"({self.coverage:.0%} of its fields compiled)"
            )
        return f"{name} is compiled"

    @property
    def coverage(self) -> float:
        """The share of the serializer's fields that compiled: 1.0 fully, 0.0 through DRF."""
        if self._root is None:
            return 0.0
        total = len(self.compiled_fields) + len(self.instance_fields)
        return len(self.compiled_fields) / total if total else 1.0

    def bind(self, serializer: BaseSerializer) -> ReadPlan:
        """This plan rendering its instance fields and running its ``@batch`` methods with
        ``serializer`` (the one the view built for the request, with the same field names)."""
        if self._root is None:
            return self
        _render_context(serializer)  # its fields read the context of the render they run in
        return dataclasses.replace(self, _serializer=serializer)

    def rows(self, queryset: AnyQuerySet, extra_columns: Iterable[str] = ()) -> QuerySet:
        """``queryset`` (or a manager) as the query of the root rows: paginate it, render a
        page. A whole plan's is a ``values()`` query, its rows in the order of ``queryset``'s
        model instances; a partial plan's loads those instances, what the compiled columns
        join and the instance fields need added to what ``queryset`` loads.

        ``extra_columns`` are loaded too, e.g. the ordering columns a cursor paginator reads.
        """
        root = self._compiled()
        queryset = queryset_of(queryset)
        if self._pages_instances:
            assert self._load is not None
            return self._load.apply(queryset)
        annotated = QueryPlan(annotations=root.annotations).apply(queryset.prefetch_related(None))
        selected = {**queryset.query.annotation_select, **queryset.query.extra_select}
        carried = [name for name in root.view_annotations if name in selected]
        columns = dict.fromkeys([*root.columns, *extra_columns, *carried])
        rows = ordered_for_values(annotated).values(*columns)
        # The same rows: a paginator counts them without the joins of the to-one columns.
        rows.count = queryset.count  # type: ignore[method-assign]
        return rows

    def render(
        self, rows: list[Any], context: Mapping[str, Any] | None = None, using: str | None = None
    ) -> list[Any]:
        """The representations of ``rows`` from ``rows()``; to-many relations query ``using``."""
        root = self._compiled()
        instances: Sequence[models.Model] = ()
        if self._pages_instances:  # a page of instances
            assert self._read_row is not None
            instances, rows = rows, [self._read_row(obj) for obj in rows]
        token = _context.set(context if context is not None else {})
        built = _built.set(self._serializer)
        try:
            data = root.render(rows, using, instances)
            shape = self._shape
            if shape is not None:  # compiled_postprocess, of the request's serializer if bound
                shape = _postprocess(self._serializer) or shape if self._serializer else shape
                data = [shape(item) for item in data]
            return data
        finally:
            _built.reset(built)
            _context.reset(token)

    def render_by_pk(
        self, queryset: QuerySet, pks: Sequence[Any], context: Mapping[str, Any] | None = None
    ) -> dict[Any, Any]:
        """The representations of rows ``pks`` of ``queryset``, by primary key."""
        pk_name = queryset.model._meta.pk.attname
        rows = list(self.rows(queryset.filter(pk__in=pks), (pk_name,)))
        rendered = self.render(rows, context, queryset.db)
        keys = [row.pk if isinstance(row, models.Model) else row[pk_name] for row in rows]
        return dict(zip(keys, rendered, strict=True))

    def execute(self, queryset: AnyQuerySet, context: Mapping[str, Any] | None = None) -> list[Any]:
        """What ``serializer_class(queryset, many=True, context=context).data`` returns;
        ``queryset`` may be a manager."""
        queryset = queryset_of(queryset)
        if not self.serves(queryset):
            serializer_class = self.serializer_class
            queryset = optimize(queryset, serializer_class)
            return serializer_class(queryset, many=True, context=context or {}).data
        return self.render_list(list(self.rows(queryset)), context, queryset.db)

    def serves(self, queryset: AnyQuerySet) -> bool:
        """Whether the plan renders ``queryset`` as DRF would. Not when ``queryset`` prefetches
        a relation the plan fetches itself through a ``Prefetch`` of its own queryset (a
        filter): DRF renders what that queryset selects, the plan every related row."""
        if self._root is None:
            return False
        # _prefetch_related_lookups: private QuerySet state, absent from django-stubs
        declared = queryset_of(queryset)._prefetch_related_lookups  # type: ignore[attr-defined]
        own = [
            lookup.prefetch_through
            for lookup in declared
            if isinstance(lookup, Prefetch) and lookup.queryset is not None and not lookup.to_attr
        ]
        fetched = [child.path for child in self._root.children]
        return not any(
            path == mine or path.startswith(mine + LOOKUP_SEP) for path in own for mine in fetched
        )

    @property
    def pages_instances(self) -> bool:
        """Whether ``rows()`` gives model instances (a partial plan), not ``values()`` rows."""
        return self._pages_instances

    def paging_instances(self) -> ReadPlan:
        """This plan with ``rows()`` loading model instances, in one query, and the compiled
        fields reading their rows off them: for code that reads the page as instances (a
        view's serializer context)."""
        return dataclasses.replace(self, _pages_instances=self._root is not None)

    @property
    def shapes_lists(self) -> bool:
        """Whether its list serializer changes what a list renders: its own
        ``to_representation()``, or the ``compiled_postprocess`` it declares."""
        return self._list_shape is not None or self._listing is not None

    def render_list(
        self, page: list[Any], context: Mapping[str, Any] | None = None, using: str | None = None
    ) -> list[Any]:
        """The representation of a list's ``page`` (of ``rows()``) as its list serializer
        renders it: ``render()``, shaped by its ``compiled_postprocess``; or its own
        ``to_representation()`` run on the page's instances, what it asks of
        ``super().to_representation()`` rendered by the plan."""
        listing = self._listing
        context = {} if context is None else context  # one dict for the list and its fields
        if listing is None:
            return self.shape_list(self.render(page, context, using))
        built = self._serializer
        if built is not None and isinstance(built.parent, ListSerializer):  # the request's
            listing = built.parent
        around = object.__new__(_around(type(listing)))  # type: ignore[arg-type]  # mypy#11470
        vars(around).update(vars(listing), instance=page)
        around._planned = (page, lambda chosen: self.render(chosen, context, using))
        token = _context.set(context)
        try:
            return around.to_representation(page)
        finally:
            _context.reset(token)

    def shape_list(self, data: list[Any]) -> list[Any]:
        """``data``, rendered rows of a list, as its list serializer's ``compiled_postprocess``
        shapes them (retrieves and single representations do not go through it)."""
        if self._list_shape is None:
            return data
        shape = self._list_shape
        built = self._serializer
        if built is not None and isinstance(built.parent, ListSerializer):  # the request's
            shape = _postprocess(built.parent) or shape
        return cast("list[Any]", shape(data))

    def _compiled(self) -> _Query:
        if self._root is None:
            raise ValueError(f"{self.serializer_class.__name__} renders through DRF, not a plan")
        return self._root


def _prefetch_name(lookup: str | Prefetch) -> str:
    return lookup if isinstance(lookup, str) else lookup.to_attr or lookup.prefetch_through


def _instance_plan(
    serializer: BaseSerializer,
    model: type[models.Model],
    chosen: Sequence[fields.Field],
    joins: Sequence[str],
) -> QueryPlan:
    """How to load the instances ``chosen`` fields of ``serializer`` render from, whole rows
    with ``joins`` (what the compiled columns read through). The serializer's ``@requires``
    declarations apply where a field reads what they name."""
    reads: set[str] | None = {f.source_attrs[0] for f in chosen if f.source_attrs}
    if any(f.source == "*" or isinstance(f, fields.SerializerMethodField) for f in chosen):
        reads = None

    def wanted(path: str) -> bool:
        return reads is None or path.split(LOOKUP_SEP)[0] in reads

    walk, node = _Walk(), _Node(model)
    for hint in class_hints(serializer):
        prefetch = tuple(lookup for lookup in hint.prefetch if wanted(_prefetch_name(lookup)))
        needs = Requirements(
            select=tuple(path for path in hint.select if wanted(path)),
            prefetch=prefetch,
            annotate={name: value for name, value in hint.annotate.items() if wanted(name)},
        )
        walk.hint(needs, node, "", code_reads=False)
    for f in chosen:
        walk.field(f, node, str(f.field_name))
    plan = _build(node, only=False)
    select_related = tuple(dict.fromkeys((*joins, *plan.select_related)))
    return dataclasses.replace(plan, select_related=select_related)


# What a serializer class's own method means for the compiler, and what to do about it.
_OWN_METHOD = {
    "to_representation": (
        "changes what DRF returns per instance; move that logic into fields "
        "(@batch method fields, annotations declared with @requires), or, when it only "
        "post-processes the dict super().to_representation() returns, move that step into a "
        "method named by compiled_postprocess to compile it"
    ),
    "get_fields": (
        "may build different fields per request; declare the fields on the class to compile it"
    ),
    "__init__": (
        "may shape the fields per request, so it is not built outside one; choose "
        "the serializer class per request in the view's get_serializer_class() to compile it"
    ),
}


@functools.cache
def compile_read_plan(serializer_class: type[BaseSerializer]) -> ReadPlan:
    """The read plan of ``serializer_class``, compiled once per class.

    Fields that do not compile render from instances (``ReadPlan.instance_fields``); a
    serializer with none but its primary key compiled renders through DRF. Either is logged
    once per class, as a WARNING naming each such field and why (the ``fallback_reasons``).
    """
    ruled_out = plan_without_building(serializer_class)  # type: ignore[arg-type]  # mypy#11470
    return _logged(ruled_out or _compile(serializer_class, serializer_class.__name__))


def _logged(plan: ReadPlan) -> ReadPlan:
    name = plan.serializer_class.__name__
    if plan.compiled and plan.fallback_reasons:
        logger.warning(
            "drf-scale renders %s's fields %s from model instances, the others compiled: %s",
            name,
            ", ".join(plan.instance_fields),
            "; ".join(plan.fallback_reasons),
        )
    elif plan.fallback_reasons:
        logger.warning(
            "drf-scale renders %s through DRF, not a compiled read plan: %s",
            name,
            "; ".join(plan.fallback_reasons),
        )
    return plan


def _compile(serializer_class: type[BaseSerializer], name: str) -> ReadPlan:
    model = serializer_class.Meta.model  # type: ignore[attr-defined]
    overridden = [
        m for m in ("get_fields", "__init__") if _class_defines_outside_drf(serializer_class, m)
    ]
    if overridden:  # decided without building one: its __init__ may need a request
        return ReadPlan(
            serializer_class, tuple(f"{name}: its own {m}() {_OWN_METHOD[m]}" for m in overridden)
        )
    try:
        # many=True builds the list serializer around a serializer_class() child (the stubs
        # type it as serializer_class).
        listing = cast(
            "ListSerializer[Any]", serializer_class(many=True, context=_CurrentContext())
        )
    except Exception as exc:  # building it without a request, say
        return ReadPlan(serializer_class, (_unbuildable(name, exc),))
    assert isinstance(listing.child, BaseSerializer)  # many_init: serializer_class()
    own = _defined_outside_drf(listing, "to_representation") and _postprocess(listing) is None
    if own and _defined_outside_drf(listing, "__init__"):  # built here, without a request
        kind = _kind(listing)
        why = f"{kind}.__init__() is its own code, which may keep the request's state"
        return ReadPlan(serializer_class, (f"{name}[]: {kind} — {why}",))
    return _compile_tree(serializer_class, model, listing, listing.child, name)


def _unbuildable(name: str, exc: Exception) -> str:
    return (
        f"{name}: building it outside a request raised {type(exc).__name__}: {exc}; "
        "read the request with self.context.get('request') (None while compiling)"
    )


def _compile_tree(
    serializer_class: type[BaseSerializer],
    model: type[models.Model],
    listing: ListSerializer[Any] | None,
    child: BaseSerializer,
    name: str,
) -> ReadPlan:
    """The plan of the built serializer ``child`` (in ``listing``, the list serializer)."""
    compiler = _Compiler(child)
    root = _Query()
    split = _Split(root.name("i"))
    try:
        shape = _postprocess(child) if _defined_outside_drf(child, "to_representation") else None
        list_shape = around = None
        if listing is not None and _defined_outside_drf(listing, "to_representation"):
            list_shape = _postprocess(listing)
            if list_shape is None:  # its own code runs on the page's instances
                _around(type(listing))  # type: ignore[arg-type]  # a TypeError if its bases forbid it
                around = listing
    except TypeError as exc:
        return ReadPlan(serializer_class, (f"{name}: {exc}",))
    try:
        code = compiler.serializer(child, _Scope(root, model), name, split)
    except Exception as exc:  # its fields, built without a request, say
        return ReadPlan(serializer_class, (*compiler.reasons, _unbuildable(name, exc)))
    reasons = tuple(compiler.reasons)
    if split.instance:
        partial = scale_settings.PARTIAL_COMPILATION
        pk = model._meta.pk
        keys = ([pk.name], [pk.attname], ["pk"])
        if not partial or all(f.source_attrs in keys for _, f in split.compiled):
            return ReadPlan(serializer_class, reasons)  # nothing to gain but the key
        root.loaders.append(_Instances(split.name, tuple(split.instance)))
    root.compile(code, name)
    chosen = [f for _, f in split.instance]
    load = _instance_plan(child, model, chosen, _joins(root.columns))
    load = dataclasses.replace(load, annotations={**root.annotations, **load.annotations})
    read_row = _row_reader(model, tuple(root.columns), tuple(root.view_annotations))
    return ReadPlan(
        serializer_class,
        reasons,
        root,
        tuple(name for name, _ in split.compiled),
        tuple(name for name, _ in split.instance),
        _shape=shape,
        _list_shape=list_shape,
        _load=load,
        _read_row=read_row,
        _pages_instances=bool(root.loaders) or around is not None,  # instances: one query
        _listing=around,
    )


_plans: dict[tuple[Any, ...], ReadPlan] = {}  # by class, list class and field names
_plans_lock = threading.Lock()


def compile_read_plan_for(serializer: BaseSerializer) -> ReadPlan:
    """The read plan of a serializer as a view built it for a request (``many=True``'s list
    serializer, or one serializer), bound to it.

    Plans are compiled once per serializer class, list serializer class and tuple of field
    names, never per instance: a serializer whose ``__init__`` (or ``get_fields()``) selects
    its fields from the request or its arguments compiles once per selection. Its fields
    that render from instances, and its ``@batch`` methods, run on the serializer given; the
    compiled fields read the render's context through ``self.context``.
    """
    listing = serializer if isinstance(serializer, ListSerializer) else None
    child = listing.child if listing is not None else serializer
    if not isinstance(child, Serializer):
        return ReadPlan(type(serializer), (f"{_kind(child)}: no fields to compile",))
    names = tuple(name for name, f in child.fields.items() if not f.write_only)
    own_list = listing is not None and _defined_outside_drf(listing, "to_representation")
    key = (type(child), type(listing) if own_list else None, names)
    plan = _plans.get(key)
    if plan is None:
        with _plans_lock:
            plan = _plans.get(key)
            if plan is None:
                plan = _plans[key] = _logged(_compile_built(listing, child))
    return plan.bind(child)


@functools.cache
def plan_without_building(serializer_class: type[BaseSerializer]) -> ReadPlan | None:
    """The plan of ``serializer_class`` when its class alone rules compiling out, so a view
    need not build one per request to know; else None. Once per class: the MRO walks stay
    off the per-request path.
    """
    name = serializer_class.__name__
    if not scale_settings.FAST_READS:
        return ReadPlan(serializer_class, (f"{name}: DRF_SCALE['FAST_READS'] is False",))
    meta = getattr(serializer_class, "Meta", None)
    if getattr(meta, "model", None) is None:
        return ReadPlan(serializer_class, (f"{name}: no Meta.model to read rows of",))
    why = _OWN_METHOD["to_representation"]
    if _class_represents(serializer_class):
        return ReadPlan(serializer_class, (f"{name}: its own to_representation() {why}",))
    return None


def _class_represents(cls: type) -> bool:
    """Whether ``cls`` has its own ``to_representation()`` without a ``compiled_postprocess``."""
    declared = isinstance(getattr(cls, "compiled_postprocess", None), str)
    return _class_defines_outside_drf(cls, "to_representation") and not declared


def _compile_built(listing: ListSerializer[Any] | None, child: Serializer[Any]) -> ReadPlan:
    serializer_class = type(child)
    ruled_out = plan_without_building(serializer_class)
    if ruled_out is not None:
        return ruled_out
    model = serializer_class.Meta.model  # type: ignore[attr-defined]
    # The plan outlives this serializer's request: its fields read the render's context.
    root = _root_of(child)
    context = root.__dict__.get("_context")
    _render_context(child)
    plan = _compile_tree(serializer_class, model, listing, child, serializer_class.__name__)
    if not plan.compiled:  # DRF renders with this serializer: its own context back
        if context is None:
            del root._context
        else:
            root._context = context
    return plan


def _root_of(serializer: BaseSerializer) -> Any:
    root: Any = serializer
    while root.parent is not None:
        root = root.parent
    return root


def _render_context(serializer: BaseSerializer) -> None:
    """Make ``serializer``'s tree read the context of the render it runs in."""
    _root_of(serializer)._context = _CurrentContext()


def _clear() -> None:
    compile_read_plan.cache_clear()
    plan_without_building.cache_clear()
    with _plans_lock:
        _plans.clear()


# Formats and coercions (REST_FRAMEWORK) are compiled in too.
scale_settings.on_change(_clear, also=("REST_FRAMEWORK",))
