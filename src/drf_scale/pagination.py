"""Keyset pagination at any depth, and DRF's paginators with counts that scale.

KeysetPagination pages by position, never by OFFSET: each page holds the rows
strictly after (or before) the last row the client saw, in an ordering made
total by appending the primary key. The client picks the ordering with
OrderingFilter's syntax (``?ordering=-price,created``) among the view's
``ordering_fields``; cursors are signed and bound to that ordering and to the
request's filters.

NULLs sort last in ascending order and first in descending order, PostgreSQL's
default (so its B-tree indexes serve both directions). The SQL says so
explicitly, so every database pages identically.

EstimatedCountPageNumberPagination and EstimatedCountLimitOffsetPagination are
DRF's classes with a count strategy (drf_scale.counting) in place of COUNT(*)
and a cap on the offset.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from functools import reduce
from itertools import permutations, product
from operator import or_
from typing import TYPE_CHECKING, Any

from django.core import signing
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import EmptyPage, InvalidPage, Page, PageNotAnInteger
from django.core.paginator import Paginator as DjangoPaginator
from django.db import connections, models
from django.db.models import F, Func, Q, QuerySet, UniqueConstraint, Value
from django.db.models.expressions import OrderBy
from django.db.models.lookups import GreaterThan, LessThan
from django.template import loader
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import BasePagination, LimitOffsetPagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import replace_query_param

from drf_scale.conf import scale_settings
from drf_scale.counting import CountResult, CountStrategy

if TYPE_CHECKING:
    from django.db.models.options import Options

__all__ = [
    "EstimatedCountLimitOffsetPagination",
    "EstimatedCountPageNumberPagination",
    "KeysetPagination",
]

CURSOR_VERSION = 1


def _parse_query_int(
    request: Request, param: str | None, default: int | None, minimum: int, maximum: int | None
) -> int | None:
    """The integer query parameter ``param``, or ``default`` when absent; a 400 when invalid."""
    if not param:
        return default
    raw = request.query_params.get(param)
    if raw is None:
        return default
    value = int(raw) if re.fullmatch(r"[0-9]{1,18}", raw) else None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise ValidationError({param: [f"Must be an integer {bounds}."]}, code="invalid")
    return value


class CountStrategyMixin:
    """``count_strategy`` on the paginator, else ``DRF_SCALE["COUNT_STRATEGY"]``."""

    count_strategy: CountStrategy | None = None

    def get_count_strategy(self) -> CountStrategy:
        if self.count_strategy is not None:
            return self.count_strategy
        return scale_settings.COUNT_STRATEGY()  # the class, imported once

    def count_rows(self, queryset: QuerySet[Any] | Sequence[Any]) -> CountResult:
        if not isinstance(queryset, QuerySet):
            return CountResult(len(queryset), estimated=False)
        return self.get_count_strategy().count(queryset)


# Keyset pagination: orderings, positions, the keyset filter, the cursor.


@dataclass(frozen=True, slots=True)
class OrderingTerm:
    """One column of a total ordering."""

    field: models.Field
    descending: bool

    def __str__(self) -> str:
        return f"-{self.field.name}" if self.descending else self.field.name

    @property
    def attname(self) -> str:
        return self.field.attname

    def flipped(self) -> "OrderingTerm":
        return replace(self, descending=not self.descending)

    def order_by(self) -> OrderBy:
        column = F(self.attname)
        if not self.field.null:
            return column.desc() if self.descending else column.asc()
        return column.desc(nulls_first=True) if self.descending else column.asc(nulls_last=True)

    def after(self, value: Any) -> Q | None:
        """Rows whose value in this column sorts strictly after ``value``; None if none can."""
        name = self.attname
        if self.descending:
            return Q(**{f"{name}__isnull": False}) if value is None else Q(**{f"{name}__lt": value})
        if value is None:
            return None
        after = Q(**{f"{name}__gt": value})
        return after | Q(**{f"{name}__isnull": True}) if self.field.null else after

    def equal(self, value: Any) -> Q:
        return Q(**{f"{self.attname}__isnull": True} if value is None else {self.attname: value})


Ordering = tuple[OrderingTerm, ...]


def resolve_ordering(model: type[models.Model], ordering: Iterable[str]) -> Ordering:
    """OrderingFilter-style names (``-price``, ``pk``) as a total ordering of ``model``.

    The primary key is appended, in the direction of the last term, unless a
    unique non-null column already makes the ordering total (terms after it
    are dropped: they can never decide), or, where Django has
    ``QuerySet.totally_ordered`` (6.1), a unique set of non-null columns does.
    """
    opts = model._meta
    ordering = tuple(ordering)
    terms: list[OrderingTerm] = []
    for item in ordering:
        name = item.removeprefix("-")
        try:
            field = opts.pk if name == "pk" else opts.get_field(name)
        except FieldDoesNotExist:
            field = None
        if field is None or not getattr(field, "concrete", False) or field.many_to_many:
            raise ImproperlyConfigured(
                f"Keyset ordering {item!r}: {opts.label} has no concrete field {name!r}."
            )
        assert isinstance(field, models.Field)  # concrete: not a ForeignObjectRel
        terms.append(OrderingTerm(field, item.startswith("-")))
        if field.primary_key or (field.unique and not field.null):
            return tuple(terms)
    if terms and getattr(model._base_manager.order_by(*ordering), "totally_ordered", False):
        return tuple(terms)
    return (*terms, OrderingTerm(opts.pk, terms[-1].descending if terms else False))


class _SQLRow(Func):
    """A SQL row value, ``(a, b)``: compared column by column, left to right."""

    function = ""
    output_field = models.Field()


def _keyset_filter(ordering: Ordering, position: Sequence[Any], row_comparison: bool) -> Q:
    """Rows strictly after ``position`` in ``ordering``.

    With ``row_comparison``, when all terms share a direction and none is
    nullable, one row-value comparison that an index on the ordering bounds.
    Otherwise the OR expansion ``a > x OR (a = x AND b > y) ...``, with the
    first column's range repeated as an AND so an index can still bound it.
    """
    nullable = any(term.field.null for term in ordering)
    directions = {term.descending for term in ordering}
    if row_comparison and len(ordering) > 1 and not nullable and len(directions) == 1:
        columns = _SQLRow(*(F(term.attname) for term in ordering))
        values = _SQLRow(
            *(Value(v, output_field=t.field) for t, v in zip(ordering, position, strict=True))
        )
        lookup = LessThan if ordering[0].descending else GreaterThan
        return Q(lookup(columns, values))
    clauses = []
    equal = Q()
    for term, value in zip(ordering, position, strict=True):
        after = term.after(value)
        if after is not None:
            clauses.append(equal & after)
        equal &= term.equal(value)
    expansion = reduce(or_, clauses)
    first, value = ordering[0], position[0]
    if len(ordering) > 1 and not first.field.null:
        bound = "lte" if first.descending else "gte"
        return Q(**{f"{first.attname}__{bound}": value}) & expansion
    return expansion


def _row_position(row: Any, ordering: Ordering) -> tuple[Any, ...]:
    """The ordering values of a model instance or a ``values()`` dict."""
    if not isinstance(row, dict):
        return tuple(getattr(row, term.attname) for term in ordering)
    try:
        return tuple(row[t.attname] if t.attname in row else row[t.field.name] for t in ordering)
    except KeyError as exc:
        raise ImproperlyConfigured(
            f"Keyset pagination over values() needs the ordering columns; {exc} is missing."
        ) from None


def _load_ordering_fields(queryset: QuerySet[Any], ordering: Ordering) -> QuerySet[Any]:
    """``queryset`` with the ordering columns loaded even under only()/defer()."""
    names, deferring = queryset.query.deferred_loading
    wanted = {term.field.name for term in ordering}
    if deferring and names & wanted:
        return queryset.defer(None).defer(*(names - wanted))
    if not deferring and not wanted <= names:
        return queryset.only(*names, *wanted)
    return queryset


def _cursor_value(value: Any) -> Any:
    """A position value as JSON; the field's to_python() reads it back losslessly."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)  # Decimal, UUID


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the ordering, and which side of it the page lies."""

    position: tuple[Any, ...]
    reverse: bool


DEFAULT_PAGE_SIZE = 20  # keyset pages when neither the paginator nor DRF sets a size


class KeysetPagination(CountStrategyMixin, BasePagination):
    """Cursor pagination on a total ordering: no OFFSET, stable under writes.

    Response: ``{"next", "previous", "results"}``, plus ``"count"`` and
    ``"count_is_estimate"`` with ``?count=true`` (computed by the count strategy).
    Allowed orderings: the view's (or this class's) ``ordering_fields``, with
    OrderingFilter's meaning; the default is the view's (or this class's)
    ``ordering``. Every client error (bad cursor, page size, ordering, count)
    is a 400 naming the parameter.
    """

    _built: tuple[Any, Any, QuerySet[Any]] | None = None  # get_page_queryset's, per request
    page_size: int | None = None  # None: DRF's PAGE_SIZE, else DEFAULT_PAGE_SIZE
    page_size_query_param: str | None = None  # opt-in, as in DRF; bounded by max_page_size
    max_page_size = 100
    cursor_query_param = "cursor"
    ordering_param = api_settings.ORDERING_PARAM
    ordering: str | Sequence[str] = ("-pk",)
    ordering_fields: str | Sequence[str | tuple[str, str]] | None = None
    count_query_param = "count"
    # Databases where a row-value comparison lets the index bound the scan.
    row_comparison_vendors = frozenset({"postgresql"})
    template = "rest_framework/pagination/previous_and_next.html"

    invalid_cursor_message = (
        "Invalid cursor: it was not issued by this endpoint or was altered. "
        "Start again from the first page."
    )
    stale_cursor_message = "This cursor has an outdated format. Start again from the first page."
    ordering_mismatch_message = (
        "This cursor was issued for ordering {cursor}, not {requested}. "
        "Keep the ordering of the link, or start again from the first page."
    )
    filter_mismatch_message = (
        "This cursor was issued for other filters. "
        "Keep the query parameters of the link, or start again from the first page."
    )

    # Hooks.

    def get_page_size(self, request: Request) -> int:
        default = self.page_size or api_settings.PAGE_SIZE or DEFAULT_PAGE_SIZE
        size = _parse_query_int(request, self.page_size_query_param, default, 1, self.max_page_size)
        assert size is not None
        return size

    def get_default_ordering(self, view: Any) -> Sequence[str]:
        ordering = getattr(view, "ordering", None) or self.ordering
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)

    def get_ordering_fields(self, model: type[models.Model], view: Any) -> list[str]:
        """The field names a client may order by (empty: only the default ordering)."""
        fields = getattr(view, "ordering_fields", None) or self.ordering_fields or []
        if fields == "__all__":
            return [f.name for f in model._meta.concrete_fields]
        return [item if isinstance(item, str) else item[0] for item in fields]

    def get_ordering(self, request: Request, model: type[models.Model], view: Any) -> Ordering:
        raw = request.query_params.get(self.ordering_param)
        if not raw:
            return resolve_ordering(model, self.get_default_ordering(view))
        requested = [term.strip() for term in raw.split(",")]
        allowed = self.get_ordering_fields(model, view)
        names = [term.removeprefix("-") for term in requested]
        if not set(names) <= set(allowed) or len(set(names)) < len(names):
            choices = ", ".join(allowed) if allowed else "none: the ordering is fixed"
            raise ValidationError(
                {
                    self.ordering_param: [
                        f"Invalid ordering {raw!r}: use distinct fields among ({choices}), "
                        "each optionally prefixed with '-'."
                    ]
                },
                code="invalid",
            )
        return resolve_ordering(model, requested)

    def get_count_requested(self, request: Request) -> bool:
        raw = request.query_params.get(self.count_query_param, "false").lower()
        if raw not in ("true", "1", "false", "0"):
            raise ValidationError(
                {self.count_query_param: ["Must be 'true' or 'false'."]}, code="invalid"
            )
        return raw in ("true", "1")

    def get_cursor_binding(self, request: Request, model: type[models.Model]) -> str:
        """A digest of the model and the filters: every parameter but paging and ordering."""
        own = {
            self.cursor_query_param,
            self.page_size_query_param,
            self.count_query_param,
            self.ordering_param,
            api_settings.URL_FORMAT_OVERRIDE,
        }
        params = sorted(
            (key, sorted(request.query_params.getlist(key)))
            for key in request.query_params
            if key not in own
        )
        return hashlib.sha256(json.dumps([model._meta.label, params]).encode()).hexdigest()[:16]

    def get_signer(self) -> signing.Signer:
        cls = type(self)
        return signing.Signer(salt=f"drf_scale.keyset:{cls.__module__}.{cls.__qualname__}", sep=".")

    # The cursor.

    def cursor_error(self, message: str) -> ValidationError:
        return ValidationError({self.cursor_query_param: [message]}, code="invalid_cursor")

    def encode_cursor(self, cursor: Cursor) -> str:
        payload = {
            "v": CURSOR_VERSION,
            "o": [str(term) for term in self.current_ordering],
            "f": self.binding,
            "p": [_cursor_value(value) for value in cursor.position],
            "r": cursor.reverse,
        }
        token = self.get_signer().sign_object(payload)
        return replace_query_param(self.base_url, self.cursor_query_param, token)

    def decode_cursor(self, request: Request) -> Cursor | None:
        token = request.query_params.get(self.cursor_query_param)
        if token is None:
            return None
        try:
            payload = self.get_signer().unsign_object(token)
        except signing.BadSignature:
            raise self.cursor_error(self.invalid_cursor_message) from None
        ordering = [str(term) for term in self.current_ordering]
        if (
            not isinstance(payload, dict)
            or payload.get("v") != CURSOR_VERSION
            or not isinstance(payload.get("p"), list)
            or len(payload["p"]) != len(payload.get("o", ()))
        ):
            raise self.cursor_error(self.stale_cursor_message)
        if payload["o"] != ordering:
            raise self.cursor_error(
                self.ordering_mismatch_message.format(
                    cursor=",".join(payload["o"]), requested=",".join(ordering)
                )
            )
        if payload.get("f") != self.binding:
            raise self.cursor_error(self.filter_mismatch_message)
        try:
            position = tuple(
                None if value is None else term.field.to_python(value)
                for term, value in zip(self.current_ordering, payload["p"], strict=True)
            )
        except DjangoValidationError:
            raise self.cursor_error(self.stale_cursor_message) from None
        return Cursor(position, reverse=bool(payload.get("r")))

    # Paginating: prepare (no query), fetch (sync or async), finish (no query).

    def get_page_queryset(
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> QuerySet[Any]:
        """Validate the request and return the query for one page plus one row.

        Built once per queryset and request: a view that validated early (a cached list
        checks the query before its 304) pays for the cursor's signature once."""
        built = self._built
        if built is not None and built[0] is queryset and built[1] is request:
            return built[2]
        model = queryset.model
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.current_page_size = self.get_page_size(request)
        self.current_ordering = self.get_ordering(request, model, view)
        self.count_requested = self.get_count_requested(request)
        self.binding = self.get_cursor_binding(request, model)
        self.cursor = self.decode_cursor(request)
        self.counted: CountResult | None = None

        reverse = self.cursor is not None and self.cursor.reverse
        ordering = self.current_ordering
        if reverse:
            ordering = tuple(term.flipped() for term in ordering)
        page = _load_ordering_fields(queryset, ordering)
        page = page.order_by(*(term.order_by() for term in ordering))
        if self.cursor is not None:
            vendor = connections[queryset.db].vendor
            row_comparison = vendor in self.row_comparison_vendors
            page = page.filter(_keyset_filter(ordering, self.cursor.position, row_comparison))
        page = page[: self.current_page_size + 1]
        self._built = (queryset, request, page)
        return page

    # Keyset pages need a QuerySet to order and filter, as DRF's CursorPagination does.
    def paginate_queryset(  # type: ignore[override]
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any]:
        rows = list(self.get_page_queryset(queryset, request, view))
        if self.count_requested:
            self.counted = self.get_count_strategy().count(queryset)
        return self.finish_page(rows)

    async def apaginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any]:
        """``paginate_queryset`` for async views, on Django's async ORM."""
        rows = [row async for row in self.get_page_queryset(queryset, request, view)]
        if self.count_requested:
            self.counted = await self.get_count_strategy().acount(queryset)
        return self.finish_page(rows)

    def finish_page(self, rows: list[Any]) -> list[Any]:
        """Trim the extra row and set the positions of the neighbouring pages."""
        has_more = len(rows) > self.current_page_size
        page = rows[: self.current_page_size]
        cursor = self.cursor
        if cursor is not None and cursor.reverse:
            page.reverse()
            self.has_next, self.has_previous = True, has_more
        else:
            self.has_next, self.has_previous = has_more, cursor is not None
        if page:
            self.next_position = _row_position(page[-1], self.current_ordering)
            self.previous_position = _row_position(page[0], self.current_ordering)
        elif cursor is not None:
            self.next_position = self.previous_position = cursor.position
        self.page = page
        self.display_page_controls = self.template is not None and (
            self.has_next or self.has_previous
        )
        return page

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        return self.encode_cursor(Cursor(self.next_position, reverse=False))

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        return self.encode_cursor(Cursor(self.previous_position, reverse=True))

    def get_paginated_response(self, data: Any) -> Response:
        body: dict[str, Any] = {}
        if self.counted is not None:
            body["count"] = self.counted.value
            body["count_is_estimate"] = self.counted.estimated
        body |= {
            "next": self.get_next_link(),
            "previous": self.get_previous_link(),
            "results": data,
        }
        return Response(body)

    # OpenAPI (DRF's BasePagination schema API, which drf-spectacular calls).

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The page as OpenAPI describes it: ``count`` and its flag only with ?count=true."""
        link = {"type": "string", "nullable": True, "format": "uri"}
        counted = f"With ?{self.count_query_param}=true."
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "count": {"type": "integer", "minimum": 0, "description": counted},
                "count_is_estimate": {
                    "type": "boolean",
                    "description": f"{counted} Whether count is an estimate.",
                },
                "next": {**link, "description": "The next page; null on the last."},
                "previous": {**link, "description": "The previous page; null on the first."},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """The query parameters, with the values this paginator accepts (any other is a 400).

        ``ordering`` is listed when the view (with a ``queryset``, which names the model)
        allows orderings: as an enum of every accepted value when there are at most
        ``SCHEMA_ORDERING_CHOICES`` of them, else as a pattern; empty, it is the default.
        """
        cursor: dict[str, Any] = {"type": "string", "minLength": 1}
        params = [(self.cursor_query_param, cursor, "The cursor of a next or previous link.")]
        model = getattr(getattr(view, "queryset", None), "model", None)
        fields = [] if model is None else self.get_ordering_fields(model, view)
        if fields:
            about = "Distinct fields, comma-separated, each optionally prefixed with '-'."
            params.append((self.ordering_param, ordering_schema(fields), about))
        count = {"type": "boolean"}
        params.append((self.count_query_param, count, "Include the (possibly estimated) count."))
        if self.page_size_query_param:
            size = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
            params.append((self.page_size_query_param, size, "Results per page."))
        return [
            {"name": name, "required": False, "in": "query", "description": about,
             "schema": schema, **({"allowEmptyValue": True} if name == self.ordering_param else {})}
            for name, schema, about in params
        ]  # fmt: skip

    def get_html_context(self) -> dict[str, Any]:
        return {"previous_url": self.get_previous_link(), "next_url": self.get_next_link()}

    def to_html(self) -> str:
        return loader.get_template(self.template).render(self.get_html_context())


SCHEMA_ORDERING_CHOICES = 100  # past this many accepted values, a pattern describes them


def ordering_schema(fields: Sequence[str]) -> dict[str, Any]:
    """The OpenAPI schema of an ordering parameter over ``fields``: an enum of each sequence
    of distinct fields, each ascending or ``-`` descending, or a pattern when they are many."""
    choices: list[str] = []
    for length in range(1, len(fields) + 1):
        for names in permutations(fields, length):
            for signs in product(("", "-"), repeat=length):
                terms = zip(signs, names, strict=True)
                choices.append(",".join(sign + name for sign, name in terms))
                if len(choices) > SCHEMA_ORDERING_CHOICES:
                    term = "-?(?:" + "|".join(re.escape(name) for name in fields) + ")"
                    return {"type": "string", "pattern": f"^{term}(?:,{term})*$"}
    return {"type": "string", "enum": choices}


# Index matching, for the drf_scale.W010 system check.


def _model_indexes(model: type[models.Model]) -> list[tuple[tuple[str, bool], ...]]:
    """The B-tree column lists of ``model``'s table as ``(attname, descending)`` tuples."""
    opts = model._meta
    found: list[tuple[tuple[str, bool], ...]] = [
        ((field.attname, False),)
        for field in opts.local_concrete_fields
        # db_index: set by Field.__init__, missing from django-stubs
        if field.primary_key or field.unique or field.db_index  # type: ignore[attr-defined]
    ]
    for index in opts.indexes:
        # B-trees only (Index, BTreeIndex); partial indexes serve only their condition.
        if index.fields and index.condition is None and index.suffix in ("idx", "btree"):
            columns = [(f.removeprefix("-"), f.startswith("-")) for f in index.fields]
            found.append(tuple((_attname(opts, name), desc) for name, desc in columns))
    unique_sets: list[Sequence[str]] = [*opts.unique_together]
    unique_sets += [
        c.fields
        for c in opts.constraints
        if isinstance(c, UniqueConstraint) and c.fields and c.condition is None
    ]
    found += [tuple((_attname(opts, f), False) for f in fields) for fields in unique_sets]
    return found


def _attname(opts: "Options[Any]", name: str) -> str:
    field = opts.get_field(name)
    assert isinstance(field, models.Field)  # indexes and constraints name forward fields
    return field.attname


def ordering_index(model: type[models.Model], ordering: Ordering) -> tuple[tuple[str, bool], ...]:
    """An index that yields ``ordering`` by a forward or backward scan; () when none does."""
    wanted = [(term.attname, term.descending) for term in ordering]
    for columns in _model_indexes(model):
        pairs = list(zip(columns, wanted, strict=False))
        if (
            len(columns) >= len(wanted)
            and all(have[0] == want[0] for have, want in pairs)
            and len({have[1] != want[1] for have, want in pairs}) == 1
        ):
            return columns
    return ()


class _CountedPage(Page):
    def __init__(self, rows: list[Any], number: int, paginator: Any, has_more: bool) -> None:
        super().__init__(rows, number, paginator)
        self.has_more = has_more

    def has_next(self) -> bool:
        return self.has_more


class CountedPaginator(DjangoPaginator):
    """Django's paginator over a count given up front, which may be an estimate.

    Whether a next page exists is read from one extra row, never from the
    count, and a page past the estimated last one is served if it has rows.
    """

    def __init__(self, object_list: Any, per_page: int, counted: CountResult) -> None:
        super().__init__(object_list, per_page)
        self.counted = counted

    @property
    def count(self) -> int:
        return self.counted.value

    def validate_number(self, number: Any) -> int:
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from None
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        return number

    def page(self, number: Any) -> _CountedPage:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage(self.error_messages["no_results"])
        return _CountedPage(rows[: self.per_page], number, self, len(rows) > self.per_page)


class OffsetCapMixin:
    """A 400 past ``max_offset`` rows (``DRF_SCALE["MAX_OFFSET"]`` by default)."""

    max_offset: int | None = None
    offset_cap_message = (
        "Offset {offset} is past the deepest offset served ({max_offset}). "
        "Page through deeper results with a cursor (keyset pagination) instead."
    )

    def check_offset(self, offset: int, param: str) -> None:
        cap = self.max_offset if self.max_offset is not None else scale_settings.MAX_OFFSET
        if offset > cap:
            message = self.offset_cap_message.format(offset=offset, max_offset=cap)
            raise ValidationError({param: [message]}, code="offset_too_deep")


def _with_estimate_flag(schema: dict[str, Any]) -> dict[str, Any]:
    properties = {"count_is_estimate": {"type": "boolean"}}
    return schema | {"properties": schema["properties"] | properties}


class EstimatedCountPageNumberPagination(CountStrategyMixin, OffsetCapMixin, PageNumberPagination):
    """PageNumberPagination counting with a strategy, strict about its parameters.

    Adds ``count_is_estimate`` to the response. A page size or page number that
    is not a positive integer is a 400, as is a page past ``max_offset`` rows.
    """

    template = None

    def get_page_size(self, request: Request) -> int | None:
        return _parse_query_int(
            request, self.page_size_query_param, self.page_size, 1, self.max_page_size
        )

    def paginate_queryset(
        self, queryset: QuerySet[Any] | Sequence[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        self.request = request
        page_size = self.get_page_size(request)
        if not page_size:
            return None
        paginator = CountedPaginator(queryset, page_size, self.count_rows(queryset))
        try:
            number = paginator.validate_number(self.get_page_number(request, paginator))
        except InvalidPage:
            raise ValidationError(
                {self.page_query_param: ["Must be a positive integer or 'last'."]}, code="invalid"
            ) from None
        self.check_offset((number - 1) * page_size, self.page_query_param)
        try:
            self.page = paginator.page(number)
        except InvalidPage as exc:
            message = self.invalid_page_message.format(page_number=number, message=exc)
            raise NotFound(message) from None
        return list(self.page)

    def get_paginated_response(self, data: Any) -> Response:
        assert self.page is not None  # set by paginate_queryset
        paginator = self.page.paginator
        assert isinstance(paginator, CountedPaginator)  # the paginator of the page served
        counted = paginator.counted
        return Response(
            {
                "count": counted.value,
                "count_is_estimate": counted.estimated,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return _with_estimate_flag(super().get_paginated_response_schema(schema))


class EstimatedCountLimitOffsetPagination(
    CountStrategyMixin, OffsetCapMixin, LimitOffsetPagination
):
    """LimitOffsetPagination counting with a strategy, strict about its parameters.

    Adds ``count_is_estimate``; the next link comes from one extra row, not the
    count. A limit or offset that is not an integer in range is a 400, as is an
    offset past ``max_offset``.
    """

    template = None

    def get_limit(self, request: Request) -> int | None:
        return _parse_query_int(
            request, self.limit_query_param, self.default_limit, 1, self.max_limit
        )

    def get_offset(self, request: Request) -> int:
        offset = _parse_query_int(request, self.offset_query_param, 0, 0, None)
        assert offset is not None
        return offset

    def paginate_queryset(
        self, queryset: QuerySet[Any] | Sequence[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        self.offset = self.get_offset(request)
        self.check_offset(self.offset, self.offset_query_param)
        self.counted = self.count_rows(queryset)
        self.count = self.counted.value
        rows = list(queryset[self.offset : self.offset + self.limit + 1])
        self.has_next = len(rows) > self.limit
        return rows[: self.limit]

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        # All set by paginate_queryset, with a limit, before has_next.
        assert self.request is not None and self.limit is not None and self.offset is not None
        url = replace_query_param(
            self.request.build_absolute_uri(), self.limit_query_param, self.limit
        )
        return replace_query_param(url, self.offset_query_param, self.offset + self.limit)

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                "count": self.count,
                "count_is_estimate": self.counted.estimated,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return _with_estimate_flag(super().get_paginated_response_schema(schema))
