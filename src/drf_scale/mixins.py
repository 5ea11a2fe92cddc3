"""The capabilities the drf_scale viewsets compose, each on DRF's hooks.

``ScaleModelViewSet`` (``drf_scale.viewsets``) is the usual way in. For a view of your own,
put any of these mixins before DRF's generic view or viewset, in any order:

class ProductViewSet(FastReadMixin, ReadWriteSerializerMixin, OptimizedQuerysetMixin,
                     viewsets.ModelViewSet):
    read_serializer_classes = {"list": ProductSerializer, "retrieve": ProductDetailSerializer}
    write_serializer_class = ProductWriteSerializer

None of them owns ``list``, ``retrieve``, ``create`` or ``update``: they extend
``get_queryset``, ``get_object``, ``paginate_queryset``, ``get_serializer``,
``perform_create``/``perform_update``, ``finalize_response`` and ``handle_exception``, each
calling ``super()``. The read hooks live once, in ``ReadPathMixin``, which every mixin here
shares: a capability only answers a question of its own (``get_read_plan``,
``get_read_serializer_class``, the cache's ``cached_object``...), so no order of the mixins
changes what a request does. ``manage.py check`` reports a stack that cannot work.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.manager import BaseManager
from rest_framework.generics import GenericAPIView, get_object_or_404
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.serializers import BaseSerializer, ListSerializer

from drf_scale.fast import ReadPlan, compile_read_plan, compile_read_plan_for, plan_without_building
from drf_scale.planner import optimize, queryset_of
from drf_scale.renderers import ORJSONRenderer
from drf_scale.sqljson import DatabasePlan, database_plan

if TYPE_CHECKING:
    from rest_framework.viewsets import ModelViewSet as _View
else:
    _View = object

__all__ = [
    "FastReadMixin",
    "OptimizedQuerysetMixin",
    "ReadPathMixin",
    "ReadWriteSerializerMixin",
    "Rendered",
]

logger = logging.getLogger("drf_scale.mixins")

READ_ACTIONS: tuple[str, ...] = ("list", "retrieve")
WRITE_ACTIONS: tuple[str, ...] = ("create", "update", "partial_update")


ListRows = tuple[Any, Callable[[list[Any]], list[Any]]]


class Rendered:
    """What ``get_serializer`` returns for data a read hook already rendered: its ``.data``."""

    def __init__(self, data: Any) -> None:
        self.data = data


class RenderedRows(list[Any]):
    """A page of ``values()`` rows with the function that renders them (by the read path)."""

    def __init__(self, rows: Any, render: Callable[[list[Any]], list[Any]]) -> None:
        super().__init__(rows)
        self.render = render


class EarlyResponse(Exception):
    """Raised by a read hook that has the whole answer (a 304): ``handle_exception`` sends it."""

    def __init__(self, response: Any) -> None:
        super().__init__("early response")
        self.response = response


class ReadPathMixin(_View):
    """The read hooks every capability shares; alone it changes nothing.

    ``get_object`` of a retrieve asks ``cached_object()`` (the cache), then the compiled plan
    (``get_read_plan()``), then DRF. ``paginate_queryset`` of a list asks
    ``cached_list_rows()``, then the plan, then DRF; the page it returns renders through
    ``get_serializer``. ``finalize_read`` post-processes list and retrieve responses.
    """

    _unpaginated: RenderedRows | None = None
    _access_checked = False
    _read_context: Any = None
    _prebuilt: BaseSerializer | None = None  # built for this read, for DRF to render with

    # Questions the capabilities answer; the defaults switch everything off.

    def get_read_plan(self) -> ReadPlan | None:
        """The compiled plan serving this list or retrieve; None: DRF renders."""
        return None

    def get_read_serializer_class(self) -> type[BaseSerializer] | None:
        """The serializer a write's response is rendered with; None: the write serializer's."""
        return None

    def cached_object(self) -> Rendered | None:
        """A retrieve's representation when a cache already has it."""
        return None

    def cached_list_rows(self, queryset: QuerySet) -> ListRows | None:
        """A list's rows for the paginator and their rendering when a cache serves them."""
        return None

    def finalize_read(self, response: Any) -> Any:
        """A list's or retrieve's response, after DRF finalized it."""
        return response

    def get_database_plan(self, queryset: QuerySet) -> DatabasePlan | None:
        """The plan rendering this list's JSON in the database; None: Python renders."""
        return None

    # DRF's hooks, extended once.

    def get_object(self) -> Any:
        if getattr(self, "action", None) != "retrieve":
            return super().get_object()
        cached = self.cached_object()
        if cached is not None:
            return cached
        plan = self.get_read_plan()
        if plan is None:
            return super().get_object()
        queryset = self.filter_queryset(self.get_queryset())
        if not plan.serves(queryset):
            return super().get_object()
        self.check_object_access()
        row = get_object_or_404(plan.rows(queryset), **self.object_lookup())
        return Rendered(plan.render([row], self.read_context(), queryset.db)[0])

    def read_context(self) -> Any:
        """The serializer context of this read, built once per request: an application's
        ``get_serializer_context()`` may query (paperless-ngx's reads the whole queryset)."""
        if self._read_context is None:
            self._read_context = self.get_serializer_context()
        return self._read_context

    def object_lookup(self) -> dict[str, Any]:
        """The filter naming the object of this detail request, as DRF's get_object builds it."""
        lookup_url_kwarg = self.lookup_url_kwarg or self.lookup_field
        return {self.lookup_field: self.kwargs[lookup_url_kwarg]}

    def check_object_access(self) -> None:
        """Object permissions for a retrieve that does not render the instance (compiled or
        cached): run them, once, on the object loaded with only the fields they declare
        (``object_fields`` on each permission class; one without loads the whole row)."""
        if self._access_checked or not checks_objects(self):
            return
        queryset = self.filter_queryset(self.get_queryset())
        queryset = queryset.select_related(None).prefetch_related(None)
        declared = [getattr(p, "object_fields", None) for p in self.get_permissions()]
        if all(fields is not None for fields in declared):
            queryset = queryset.only(*{name for fields in declared for name in fields or ()})
        instance = get_object_or_404(queryset, **self.object_lookup())
        self.check_object_permissions(self.request, instance)
        self._access_checked = True

    def paginate_queryset(self, queryset: Any) -> Any:
        queryset = queryset_of(queryset) if isinstance(queryset, BaseManager) else queryset
        if getattr(self, "action", None) != "list" or not isinstance(queryset, QuerySet):
            return super().paginate_queryset(queryset)
        found = self.cached_list_rows(queryset) or self.compiled_list_rows(queryset)
        if found is None:
            return super().paginate_queryset(queryset)
        rows, render = found
        page = super().paginate_queryset(rows)
        if page is None:  # no pagination: DRF asks get_serializer for the queryset's data
            self._unpaginated = RenderedRows(rows, render)
            return None
        return RenderedRows(page, render)

    def compiled_list_rows(self, queryset: QuerySet) -> ListRows | None:
        """The plan's ``values()`` rows of a list and their rendering; None: DRF's path."""
        plan = self.get_read_plan()
        if plan is None or not plan.serves(queryset):
            return None
        database = self.get_database_plan(queryset)
        found = database and database.rows(queryset, self.get_row_columns(queryset.model))
        if database is not None and found is not None:
            context = self.read_context()
            return found, lambda page: self.json_data(database.render(page, queryset, context))
        using = queryset.db
        rows = plan.rows(queryset, self.get_row_columns(queryset.model))
        if plan.pages_instances:  # the view's context may read the page, as under DRF
            return rows, lambda page: plan.render_list(page, self.read_context(), using)
        context = self.read_context()  # before the page of values() rows, which it cannot read
        return rows, lambda page: plan.render_list(page, context, using)

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        instance = args[0] if args else kwargs.get("instance")
        if isinstance(instance, Rendered):
            return instance
        if isinstance(instance, RenderedRows):
            return Rendered(instance.render(list(instance)))
        many = isinstance(instance, QuerySet | BaseManager)  # DRF passes a manager on unchanged
        if self._unpaginated is not None and kwargs.get("many") and many:
            rows, self._unpaginated = self._unpaginated, None
            return Rendered(rows.render(list(rows)))
        prebuilt = self._prebuilt
        rendering = len(args) == 1 and not kwargs.keys() - {"many"}  # DRF's list or retrieve
        as_list = bool(kwargs.get("many"))
        if prebuilt is not None and rendering and as_list == isinstance(prebuilt, ListSerializer):
            self._prebuilt = None
            prebuilt.instance = args[0]
            prebuilt._context = self.read_context()  # DRF's own attribute
            return prebuilt
        return super().get_serializer(*args, **kwargs)

    def handle_exception(self, exc: Exception) -> Any:
        if isinstance(exc, EarlyResponse):
            return exc.response
        return super().handle_exception(exc)

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if getattr(self, "action", None) in READ_ACTIONS:
            return self.finalize_read(response)
        return response

    def compact_json(self) -> bool:
        """Whether the response body is the compact JSON the orjson renderer writes (which
        ETags are computed on, and rendered JSON is passed through as)."""
        renderer = getattr(self.request, "accepted_renderer", None)
        media_type = getattr(self.request, "accepted_media_type", "") or ""
        return (
            isinstance(renderer, ORJSONRenderer)
            and not renderer.ensure_ascii
            and "indent" not in media_type
        )

    def json_data(self, bodies: list[str | bytes]) -> list[Any]:
        """What a Response carries for JSON already rendered: the bytes as they are, when the
        renderer would write them so, else their data."""
        if self.compact_json():
            return [orjson.Fragment(body) for body in bodies]
        return [orjson.loads(body) for body in bodies]

    def get_row_columns(self, model: type[Model]) -> tuple[str, ...]:
        """Columns the page's rows carry besides rendered ones: ``row_columns`` of the view
        and its paginator."""
        return row_columns(model, self, self.paginator)


def row_columns(model: type[Model], *owners: Any) -> tuple[str, ...]:
    """The primary key and the fields of the ``ordering`` and ``ordering_fields`` of
    ``owners`` (a view, its paginator): what a cursor paginator reads from a page's last row."""
    names = [model._meta.pk.attname]
    for owner in owners:
        for attribute in ("ordering", "ordering_fields"):
            names += _names(getattr(owner, attribute, None))
    concrete = {field.name for field in model._meta.concrete_fields}
    return tuple(dict.fromkeys(name for name in names if name in concrete))


class FastReadMixin(ReadPathMixin):
    """List and retrieve through the compiled read plan of the action's serializer.

    ``render_in_database = True`` has PostgreSQL write a list's JSON (``drf_scale.sqljson``)
    where the serializer allows, else the plan renders it (the reason is logged once).

    Filtering and pagination are unchanged: the paginator receives the plan's ``values()``
    query (so it counts and slices it as any queryset) and the page's rows are rendered, their
    to-many relations in one query each; a retrieve with object permissions runs them first
    (``check_object_access``). A serializer that does not compile takes DRF's path.
    ``fast_reads = False``
    switches it off for the view; None follows ``DRF_SCALE["FAST_READS"]``.

    A serializer whose ``__init__`` or ``get_fields()`` is its own, or a view with its own
    ``get_serializer()``, is built per request as ``get_serializer()`` builds it (the list's
    ``many=True``) and compiled once per field set (``compile_read_plan_for``).

    A view with its own ``get_serializer_context()`` may read the list's page there (to batch
    per-object permissions): its lists page model instances, in one query, and the context
    comes after pagination, as under DRF. ``context_reads_page = False`` says it does not,
    so the plan pages ``values()`` rows and the context comes before the page.
    """

    fast_reads: bool | None = None
    # Lists whose JSON PostgreSQL writes (drf_scale.sqljson), where the serializer allows.
    render_in_database = False
    # Whether get_serializer_context() reads a list's page; None: whether the view has its own.
    context_reads_page: bool | None = None
    _read_plans: dict[str, ReadPlan | None] | None = None  # per request, by action

    def get_read_plan(self) -> ReadPlan | None:
        action = getattr(self, "action", None)
        if action not in READ_ACTIONS or self.fast_reads is False:
            return None
        if not isinstance(self, GenericAPIView):  # no serializer class to plan (E073)
            return None
        if self._read_plans is None:
            self._read_plans = {}
        if action not in self._read_plans:
            # None while compiling: building the serializer may ask again (an app's
            # get_serializer_context() calling get_queryset(), as paperless-ngx's does).
            self._read_plans[action] = None
            self._read_plans[action] = self.compile_read_plan(action)
        return self._read_plans[action]

    def compile_read_plan(self, action: str) -> ReadPlan | None:
        serializer_class = self.get_serializer_class()
        # mypy#11470: classes are Hashable, as functools.cache requires
        if _builds_per_request(type(self), serializer_class):  # type: ignore[arg-type]
            if self._caches_representations():  # one cache namespace per class
                return None
            # mypy#11470: classes are Hashable, as functools.cache requires
            ruled_out = plan_without_building(serializer_class)  # type: ignore[arg-type]
            if ruled_out is not None:
                return None  # no serializer built for nothing: DRF builds the one it renders
            try:
                built = self.build_for_plan(action)
            except Exception as exc:  # its get_serializer() needs the view's own context
                _unbuilt(type(self), f"{type(exc).__name__}: {exc}")
                return None
            plan = compile_read_plan_for(built)
            if not plan.compiled:
                self._prebuilt = built  # DRF renders with it rather than building another
        else:
            # mypy#11470: classes are Hashable, as functools.cache requires
            plan = compile_read_plan(serializer_class)  # type: ignore[arg-type]
        if action == "list" and plan.shapes_lists and self._caches_representations():
            return None  # the cache stores each object's representation, not lists
        if action == "list" and self._context_reads_page():
            plan = plan.paging_instances()  # the context comes after the page, as under DRF
        return plan if plan.compiled else None

    def get_database_plan(self, queryset: QuerySet) -> DatabasePlan | None:
        if not self.render_in_database or getattr(self, "action", None) != "list":
            return None
        plan = self.get_read_plan()
        if plan is None or connections[queryset.db].vendor != "postgresql":  # as documented
            return None
        database = database_plan(plan)
        why = database.unusable(queryset)
        if why is None and plan.pages_instances:
            why = "its get_serializer_context() reads the page's instances (context_reads_page)"
        if why is not None:
            _in_python(type(self), why)
            return None
        return database

    def _context_reads_page(self) -> bool:
        if self.context_reads_page is not None:
            return self.context_reads_page
        return _own_context(type(self))

    def build_for_plan(self, action: str) -> BaseSerializer:
        """The serializer ``get_serializer()`` builds for this read (the list's ``many=True``),
        in DRF's own context (request, format, view): the view's ``get_serializer_context()``
        may read the page (paperless-ngx's batches permissions for it), which does not exist
        yet, so it runs when the read renders (``read_context()``)."""
        own_context = functools.partial(GenericAPIView.get_serializer_context, self)
        self.get_serializer_context = own_context  # type: ignore[method-assign]
        try:
            return self.get_serializer(many=True) if action == "list" else self.get_serializer()
        finally:
            del self.get_serializer_context

    def _caches_representations(self) -> bool:
        """Whether the representation cache (``drf_scale.cache``) serves this request."""
        cache = getattr(self, "get_representation_cache", None)
        return cache is not None and cache() is not None


@functools.cache
def _in_python(view_class: type, why: str) -> None:
    """Say once per view class and reason why its lists render in Python, not in SQL."""
    logger.warning(
        "drf-scale renders %s's lists in Python, not in the database: %s", view_class.__name__, why
    )


@functools.cache
def _unbuilt(view_class: type, error: str) -> None:
    """Say once per view class and error why its reads render through DRF."""
    logger.warning(
        "drf-scale renders %s's reads through DRF: its get_serializer() raised %s in DRF's "
        "own serializer context (request, format, view), which the plan is built in",
        view_class.__name__,
        error,
    )


@functools.cache
def _own_context(view_class: type) -> bool:
    """Whether the view's ``get_serializer_context()`` is its own."""
    return _defined_outside(view_class, "get_serializer_context", "drf_scale.")


@functools.cache
def _builds_per_request(view_class: type, serializer_class: type[BaseSerializer]) -> bool:
    """Whether the serializer's fields may differ per request: its own ``__init__`` or
    ``get_fields()``, its list serializer's own ``__init__`` (state of the request), or the
    view's own ``get_serializer()``. Once per pair of classes: the MRO walks stay off the
    per-request path."""
    meta = getattr(serializer_class, "Meta", None)
    list_class = getattr(meta, "list_serializer_class", None)
    return (
        any(_defined_outside(serializer_class, name) for name in ("__init__", "get_fields"))
        or (list_class is not None and _defined_outside(list_class, "__init__"))
        or _defined_outside(view_class, "get_serializer", "drf_scale.")
    )


def _defined_outside(cls: type, name: str, *also: str) -> bool:
    """Whether any class of ``cls`` outside DRF (and ``also``) defines method ``name``."""
    return any(
        name in vars(klass) and not klass.__module__.startswith(("rest_framework.", *also))
        for klass in cls.__mro__
        if klass is not object
    )


class ReadWriteSerializerMixin(ReadPathMixin):
    """Validate writes with the write serializer; render every response with the read one.

    ``read_serializer_class`` serves list and retrieve, ``write_serializer_class`` create and
    updates (OPTIONS describes both); ``read_serializer_classes`` and
    ``write_serializer_classes`` override them per action (custom actions included, which
    otherwise keep their own serializer). Views without actions choose by method. A write
    answers with what a GET of the saved object returns: the read serializer of the action,
    else that of retrieve, rendering a fresh fetch through ``get_queryset()`` (by its compiled
    read plan when it has one).
    """

    read_serializer_class: type[BaseSerializer] | None = None
    write_serializer_class: type[BaseSerializer] | None = None
    read_serializer_classes: Mapping[str, type[BaseSerializer]] = {}
    write_serializer_classes: Mapping[str, type[BaseSerializer]] = {}

    def get_serializer_class(self) -> type[BaseSerializer]:
        action: str | None = getattr(self, "action", None)
        if getattr(self.request, "method", "GET") in SAFE_METHODS:
            chosen = self.read_serializer_classes.get(action) if action is not None else None
            default, actions = self.read_serializer_class, READ_ACTIONS
        else:
            chosen = self.write_serializer_classes.get(action) if action is not None else None
            default, actions = self.write_serializer_class, WRITE_ACTIONS
        if chosen is None and action in (None, "metadata", *actions):  # OPTIONS describes both
            chosen = default
        return chosen or super().get_serializer_class()

    def get_read_serializer_class(self) -> type[BaseSerializer] | None:
        classes = self.read_serializer_classes
        action: str | None = getattr(self, "action", None)
        chosen = classes.get(action) if action is not None else None
        return chosen or classes.get("retrieve") or self.read_serializer_class

    def get_read_data(self, serializer: BaseSerializer) -> Any:
        """The representation of the object ``serializer`` saved, as a GET would render it."""
        read_class = self.get_read_serializer_class()
        instance = serializer.instance
        if read_class is None or not isinstance(instance, Model):
            return serializer.data
        context = self.get_serializer_context()
        queryset = self.get_queryset().filter(pk=instance.pk)
        # mypy#11470: classes are Hashable, as functools.cache requires
        rows = compile_read_plan(read_class).execute(queryset, context)  # type: ignore[arg-type]
        return rows[0] if rows else read_class(instance, context=context).data

    def perform_create(self, serializer: BaseSerializer) -> None:
        super().perform_create(serializer)
        _answer_with(serializer, self.get_read_data(serializer))

    def perform_update(self, serializer: BaseSerializer) -> None:
        super().perform_update(serializer)
        _answer_with(serializer, self.get_read_data(serializer))


def _answer_with(serializer: BaseSerializer, data: Any) -> None:
    """Make ``serializer.data``, which DRF's create and update answer with, be ``data``."""
    serializer._data = data  # type: ignore[attr-defined]  # DRF's cache of .data


class OptimizedQuerysetMixin(ReadPathMixin):
    """For generic views and viewsets: plan ``get_queryset()`` for the action's serializer.

    List, retrieve and writes each get the plan of their own serializer class; a read served by
    a compiled plan needs none. After a create or update, the response renders from a fresh
    planned fetch of the saved row, so no stale prefetch cache leaks into it (unless a read
    serializer renders it afresh anyway). Set ``only_columns = True`` to also load only what
    renders.
    """

    only_columns: bool = False
    # The row these actions change is not rendered: the response comes from a fresh fetch.
    unplanned_actions: tuple[str, ...] = ("update", "partial_update", "destroy")

    def get_queryset(self) -> QuerySet:
        queryset = queryset_of(super().get_queryset())  # a manager, from an override
        if getattr(self, "action", None) in self.unplanned_actions:
            return queryset
        if not isinstance(self, GenericAPIView):  # no serializer class to plan for (E073)
            return queryset
        plan = self.get_read_plan()
        if plan is not None and plan.serves(queryset):  # the plan loads what it renders
            return queryset
        return self.plan_queryset(queryset)

    def plan_queryset(self, queryset: QuerySet) -> QuerySet:
        return optimize(queryset, self.get_serializer_class(), only=self.only_columns)

    def perform_create(self, serializer: BaseSerializer) -> None:
        super().perform_create(serializer)
        self.refetch_saved(serializer)

    def perform_update(self, serializer: BaseSerializer) -> None:
        super().perform_update(serializer)
        self.refetch_saved(serializer)

    def refetch_saved(self, serializer: BaseSerializer) -> None:
        """Replace the saved instance with a planned fetch of it, when the queryset has it."""
        instance = serializer.instance
        if isinstance(instance, Model) and self.get_read_serializer_class() is None:
            queryset = super().get_queryset()
            fresh = self.plan_queryset(queryset).filter(pk=instance.pk).first()
            if fresh is not None:
                serializer.instance = fresh


def checks_objects(view: Any) -> bool:
    """Whether a permission of the view checks objects, which needs model instances."""
    return any(
        type(permission).has_object_permission is not BasePermission.has_object_permission
        for permission in view.get_permissions()
    )


def _names(ordering: Any) -> list[str]:
    """Field names in an ordering or ordering_fields value ("__all__" names none)."""
    if ordering == "__all__":
        return []
    items = [ordering] if isinstance(ordering, str) else list(ordering or ())
    return [(item if isinstance(item, str) else item[0]).lstrip("-") for item in items]
