"""Query plans derived from serializers: what a queryset must load so rendering runs no query.

``plan_for(ProductSerializer)`` walks the serializer's field tree once per class and returns a
``QueryPlan``: select_related paths for single-valued relations, prefetch_related lookups for
many-valued ones (``Prefetch`` objects carrying the nested plan, to any depth; a generic
foreign key is prefetched with ``GenericPrefetch``, a generic relation as a reverse foreign
key), annotations that fields declare, and, when asked, the ``only()`` columns rendering reads.
``optimize`` applies it; ``drf_scale.mixins.OptimizedQuerysetMixin`` does so in generic views
for the serializer of each action.

What the planner cannot see is declared with ``@requires`` (method fields, model properties,
Prefetch objects with custom querysets) or reported in ``QueryPlan.unplanned``; it never guesses.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar, cast

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.prefetch import GenericPrefetch
from django.db import models
from django.db.models import Prefetch
from django.db.models.constants import LOOKUP_SEP
from django.db.models.manager import BaseManager
from django.db.models.query import ModelIterable, QuerySet
from rest_framework.fields import Field, SerializerMethodField
from rest_framework.relations import (
    HyperlinkedIdentityField,
    HyperlinkedRelatedField,
    ManyRelatedField,
    PrimaryKeyRelatedField,
    RelatedField,
    SlugRelatedField,
    StringRelatedField,
)
from rest_framework.serializers import BaseSerializer, ListSerializer, Serializer

from drf_scale.conf import scale_settings
from drf_scale.model_meta import (
    Kind,
    ModelField,
    Relation,
    attribute,
    expand_ordering,
    relation,
)

__all__ = ["QueryPlan", "optimize", "plan_for", "requires"]

logger = logging.getLogger("drf_scale.planner")

_HINT = "_drf_scale_requires"

AnyQuerySet = QuerySet[Any] | BaseManager[Any]  # what DRF takes as a view's queryset
_DISPLAY_METHOD = re.compile(r"get_(\w+)_display")

Target = TypeVar("Target")


@dataclass(frozen=True)
class Requirements:
    """What a method field, model property or serializer class reads; set by ``@requires``."""

    select: tuple[str, ...] = ()
    prefetch: tuple[str | Prefetch, ...] = ()
    annotate: Mapping[str, Any] = field(default_factory=dict)


def requires(
    *,
    select: Iterable[str] = (),
    prefetch: Iterable[str | Prefetch] = (),
    annotate: Mapping[str, Any] | None = None,
) -> Callable[[Target], Target]:
    """Declare what the decorated code reads, so the planner can load it up front.

    On a ``get_<name>`` method of a serializer or on a model property or method, paths are
    relative to the instance and name what the code reads: ``"brand__name"``, ``"price"``,
    ``"reviews__rating"``. The planner joins or prefetches each relation by its kind, and
    ``only()`` keeps the columns named. ``annotate`` adds annotations the code reads.
    ``Prefetch`` objects (custom querysets, ``to_attr``) declare how to fetch a relation.

    On a serializer class, ``Prefetch`` objects declare relations that fields render under
    their ``to_attr``, e.g. the five latest reviews as ``latest_reviews``.
    """
    needs = Requirements(tuple(select), tuple(prefetch), MappingProxyType(dict(annotate or {})))

    def decorate(target: Target) -> Target:
        function = _function_of(target)
        if function is None:
            raise TypeError(f"@requires cannot decorate {target!r}")
        setattr(function, _HINT, needs)
        return target

    return decorate


def _function_of(target: Any) -> Any:
    """The object that carries a hint: a function, property getter or class."""
    if isinstance(target, property):
        return target.fget
    if isinstance(target, functools.cached_property):
        return target.func
    if callable(target):
        return target
    return None


def class_hints(serializer: BaseSerializer) -> list[Requirements]:
    """The ``@requires`` hints of a serializer's class and its bases, bases first."""
    hints = (vars(klass).get(_HINT) for klass in reversed(type(serializer).__mro__))
    return [hint for hint in hints if hint is not None]


def queryset_of(queryset: AnyQuerySet) -> QuerySet:
    """A QuerySet of what DRF accepts as one: a manager (``Product.objects``) or a queryset."""
    return queryset.all() if isinstance(queryset, BaseManager) else queryset


def ordered_for_values(queryset: QuerySet) -> QuerySet:
    """``queryset`` ordered so that its ``values()`` rows come in the order of its instances.

    ``values("brand")`` names the key column ``brand``, and Django then orders ``brand`` by that
    column (``ORDER BY 3``) where the model queryset orders by Brand's ordering. The ordering
    (its own, else Meta.ordering) is spelled out with the related models' orderings instead.
    """
    query = queryset.query
    if query.extra_order_by or query.distinct_fields or query.combinator:
        return queryset
    meta = query.group_by is None and query.default_ordering  # GROUP BY drops Meta.ordering
    ordering = query.order_by or (queryset.model._meta.ordering if meta else ())
    expanded = expand_ordering(queryset.model, ordering, skip=query.annotations)
    if expanded == tuple(ordering):
        return queryset
    queryset = queryset.all()  # a clone, ordered in place: order_by() refuses a sliced one
    queryset.query.clear_ordering(force=True, clear_default=False)
    queryset.query.add_ordering(*expanded)
    return queryset


def _hint_of(target: Any) -> Requirements | None:
    function = _function_of(target)
    return getattr(function, _HINT, None) if function is not None else None


@dataclass(frozen=True)
class QueryPlan:
    """What a queryset must load so that a serializer renders it without further queries."""

    select_related: tuple[str, ...] = ()
    prefetch: tuple[str | Prefetch, ...] = ()
    annotations: Mapping[str, Any] = field(default_factory=dict)
    only: tuple[str, ...] | None = None
    unplanned: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.select_related or self.prefetch or self.annotations) and self.only is None

    def apply(self, queryset: AnyQuerySet) -> QuerySet:
        """Return ``queryset`` loading what the plan says; what the queryset declares wins."""
        queryset = queryset_of(queryset)
        if not issubclass(queryset._iterable_class, ModelIterable):
            return queryset
        # _prefetch_related_lookups: private QuerySet state, absent from django-stubs
        declared: Sequence[str | Prefetch]
        declared = queryset._prefetch_related_lookups  # type: ignore[attr-defined]
        # A relation the queryset prefetches stays prefetched (rows pointing at one object
        # share its instance, so what code loads from it loads once), and so does what the
        # plan reads past it.
        prefetched = _prefetched_paths(declared)
        through = [path for path in self.select_related if _under(path, prefetched)]
        joined = [path for path in self.select_related if path not in through]
        if joined and queryset.query.select_related is not True:
            queryset = queryset.select_related(*joined)
        annotations = {
            name: value
            for name, value in self.annotations.items()
            if name not in queryset.query.annotations
        }
        if annotations:
            ordered = queryset.ordered
            queryset = queryset.annotate(**annotations)
            if ordered and not queryset.ordered:  # GROUP BY drops Meta.ordering: keep it
                queryset = queryset.order_by(*queryset.model._meta.ordering)
        if self.prefetch or through:
            lookups = merge_lookups(declared, (*self.prefetch, *through))
            queryset = queryset.prefetch_related(None).prefetch_related(*lookups)
        if self.only is not None and queryset.query.deferred_loading == (frozenset(), True):
            queryset = queryset.only(*self.only)
        return with_unplanned_fetch_mode(queryset)


def _prefetched_paths(lookups: Sequence[str | Prefetch]) -> set[str]:
    """Every relation path ``lookups`` prefetch, each level of each lookup."""
    paths: set[str] = set()
    for lookup in lookups:
        steps = (lookup if isinstance(lookup, str) else lookup.prefetch_through).split(LOOKUP_SEP)
        paths.update(LOOKUP_SEP.join(steps[: depth + 1]) for depth in range(len(steps)))
    return paths


def _under(path: str, prefetched: set[str]) -> bool:
    """Whether a select_related ``path`` goes through a prefetched relation."""
    steps = path.split(LOOKUP_SEP)
    return any(LOOKUP_SEP.join(steps[: depth + 1]) in prefetched for depth in range(len(steps)))


class PlannedPrefetch(Prefetch):
    """A Prefetch whose queryset had ``plan`` applied, so the plan can follow a replacement."""

    def __init__(
        self, lookup: str, queryset: QuerySet, plan: QueryPlan, to_attr: str | None = None
    ) -> None:
        super().__init__(lookup, queryset=queryset, to_attr=to_attr)
        self.plan = plan


def merge_lookups(
    declared: Sequence[str | Prefetch], planned: Sequence[str | Prefetch]
) -> list[str | Prefetch]:
    """Merge prefetch lookups into a list prefetch_related accepts without duplicate errors.

    One lookup per destination: a declared Prefetch with a custom queryset wins and receives
    the nested plan of the planned lookup it replaces; otherwise the planned lookup wins.
    Lookups with querysets come first, shallowest first, so string lookups that pass through
    them reuse their rows.
    """
    merged: dict[str, str | Prefetch] = {_prefetch_to(lookup): lookup for lookup in planned}
    for lookup in declared:
        key = _prefetch_to(lookup)
        mine = merged.get(key)
        if mine is not None and not _has_queryset(lookup):
            continue
        if isinstance(mine, PlannedPrefetch) and isinstance(lookup, Prefetch):
            assert lookup.queryset is not None  # mine is set: _has_queryset(lookup) held
            lookup = Prefetch(
                lookup.prefetch_through,
                queryset=mine.plan.apply(lookup.queryset),
                to_attr=lookup.to_attr,
            )
        merged[key] = lookup
    return sorted(
        merged.values(),
        key=lambda lookup: (not _has_queryset(lookup), _prefetch_to(lookup).count(LOOKUP_SEP)),
    )


def _querysets(lookup: GenericPrefetch) -> list[QuerySet]:
    return list(lookup.querysets)  # type: ignore[attr-defined]  # absent from django-stubs


def _prefetch_to(lookup: str | Prefetch) -> str:
    return lookup.prefetch_to if isinstance(lookup, Prefetch) else lookup


def _has_queryset(lookup: str | Prefetch) -> bool:
    """A Prefetch with a queryset, or a GenericPrefetch with querysets: how to fetch is set."""
    if isinstance(lookup, GenericPrefetch):
        return bool(_querysets(lookup))
    return isinstance(lookup, Prefetch) and lookup.queryset is not None


# The walk: a tree of nodes, one per set of rows rendering reads.


@dataclass
class _Edge:
    """A relation from a node's rows: joined or prefetched."""

    relation: Relation
    node: _Node
    to_attr: str | None = None
    queryset: QuerySet | None = None

    @property
    def joinable(self) -> bool:
        """Single-valued, nothing to annotate and no declared queryset: select_related."""
        declared = self.to_attr is not None or self.queryset is not None
        return not (declared or self.relation.many or self.node.annotations)

    def back_pointer(self) -> tuple[str, ...]:
        """The columns of the related rows that prefetch needs to stitch them to their owners."""
        declaring = self.relation.field
        if isinstance(declaring, GenericRelation):
            return (declaring.object_id_field_name, declaring.content_type_field_name)
        if self.relation.forward or self.relation.kind is Kind.REVERSE_MANY_TO_MANY:
            return ()
        return (self.relation.back,)

    def default_queryset(self) -> QuerySet:
        model = self.node.model
        manager = model._default_manager if self.relation.many else model._base_manager
        return manager.all()


@dataclass
class _Node:
    """What rendering reads from the rows of one model reached by one path."""

    model: type[models.Model]
    columns: set[str] | None = field(default_factory=set)  # None: every column
    annotations: dict[str, Any] = field(default_factory=dict)
    relations: dict[str, _Edge] = field(default_factory=dict)  # by accessor or to_attr
    generic: dict[str, _Generic] = field(default_factory=dict)  # generic foreign keys, by name

    def read_column(self, name: str) -> None:
        if self.columns is not None and name != "pk":
            self.columns.add(name)

    def read_everything(self) -> None:
        self.columns = None

    def edge(self, name: str, step: Relation, model: type[models.Model] | None = None) -> _Edge:
        if name not in self.relations:
            self.relations[name] = _Edge(step, _Node(model or step.related_model))
        return self.relations[name]

    def generic_edge(self, name: str, generic_key: GenericForeignKey) -> _Generic:
        if name not in self.generic:
            self.generic[name] = _Generic(generic_key)
        return self.generic[name]


@dataclass
class _Generic:
    """A generic foreign key of a node's rows: prefetched, per model of the rows it reaches.

    ``nodes`` holds what rendering reads from the rows of each model it knows (a nested model
    serializer); rows of other models are fetched whole, as Django's prefetch does.
    """

    key: GenericForeignKey
    nodes: dict[type[models.Model], _Node] = field(default_factory=dict)
    declared: GenericPrefetch | None = None

    def node(self, model: type[models.Model]) -> _Node:
        return self.nodes.setdefault(model, _Node(model))

    def lookup(self, path: str, *, only: bool) -> str | Prefetch:
        if self.declared is not None:
            declared = self.declared
            return GenericPrefetch(path, _querysets(declared), to_attr=declared.to_attr)
        if not self.nodes:
            return path
        querysets = [
            _build(node, only=only).apply(model._base_manager.all())
            for model, node in self.nodes.items()
        ]
        return GenericPrefetch(path, querysets)


def _step(model: type[models.Model], name: str) -> Relation | None:
    """The relation the planner follows from ``name``: as ``relation()``, or a generic relation
    (prefetched as a reverse foreign key; the compiler does not read it)."""
    found = relation(model, name)
    if found is None:
        other = attribute(model, name)
        if isinstance(other, Relation) and other.kind is Kind.GENERIC_RELATION:
            return other
    return found


def _generic_key(model: type[models.Model], name: str) -> GenericForeignKey | None:
    found = attribute(model, name)
    if isinstance(found, ModelField) and isinstance(found.field, GenericForeignKey):
        return found.field
    return None


class _Walk:
    """One walk of a serializer tree, recording what it reads and what it could not plan."""

    def __init__(self) -> None:
        self.unplanned: list[str] = []

    def not_planned(self, node: _Node, where: str) -> None:
        self.unplanned.append(where)
        node.read_everything()

    def serializer(self, serializer: BaseSerializer, node: _Node, where: str) -> None:
        for hint in class_hints(serializer):
            self.hint(hint, node, where, code_reads=False)
        # Only a Serializer has fields: anything else raises AttributeError here, as it always
        # did, and plan_for leaves it unplanned.
        serializer_fields = cast("Serializer[Any]", serializer).fields
        for name, serializer_field in serializer_fields.items():
            if not serializer_field.write_only:
                self.field(serializer_field, node, f"{where}.{name}")

    def field(self, serializer_field: Field, node: _Node, where: str) -> None:
        if isinstance(serializer_field, SerializerMethodField):
            method = getattr(type(serializer_field.parent), serializer_field.method_name, None)
            self.hinted(_hint_of(method), node, where)
        elif serializer_field.source != "*":
            *through, last = serializer_field.source_attrs
            target = self.follow(node, through, where)
            if target is not None:
                self.attribute(serializer_field, target, last, where)
        elif isinstance(serializer_field, BaseSerializer) and not isinstance(
            serializer_field, ListSerializer
        ):
            self.serializer(serializer_field, node, where)
        elif isinstance(serializer_field, HyperlinkedIdentityField):
            node.read_column(serializer_field.lookup_field)
        else:
            self.not_planned(node, where)

    def follow(self, node: _Node, names: Sequence[str], where: str) -> _Node | None:
        """The node reached through the single-valued relations ``names`` (a dotted source)."""
        for name in names:
            step = relation(node.model, name)
            if step is None or step.many:
                self.not_planned(node, where)
                return None
            node = node.edge(name, step).node
        return node

    def attribute(self, serializer_field: Field, node: _Node, name: str, where: str) -> None:
        """What rendering ``serializer_field`` reads from attribute ``name`` of node's rows."""
        found = attribute(node.model, name)
        if found is None:
            self.non_field(serializer_field, node, name, where)
        elif isinstance(found, ModelField) and found.column:
            node.read_column(found.name)  # a column, or a foreign key read by its attname
        elif isinstance(found, ModelField) and isinstance(found.field, GenericForeignKey):
            self.generic(serializer_field, node.generic_edge(name, found.field), where)
        elif isinstance(found, Relation) and found.kind is Kind.GENERIC_RELATION:
            self.related(serializer_field, node.edge(name, found), where)
        elif isinstance(found, ModelField) or not found.plannable:
            self.not_planned(node, where)
        elif (
            found.kind is Kind.FOREIGN_KEY
            and isinstance(serializer_field, RelatedField)
            and serializer_field.use_pk_only_optimization()
        ):
            node.read_column(found.name)  # DRF reads the foreign key column: no join
        else:
            self.related(serializer_field, node.edge(name, found), where)

    def generic(self, serializer_field: Field, edge: _Generic, where: str) -> None:
        """A generic foreign key rendered by ``serializer_field``: a nested model serializer
        reads the rows of its model as planned; any other field reads the related row whole."""
        if isinstance(serializer_field, Serializer):
            model = _model_of(type(serializer_field))
            if model is not None:
                self.serializer(serializer_field, edge.node(model), where)

    def non_field(self, serializer_field: Field, node: _Node, name: str, where: str) -> None:
        """A declared annotation or ``to_attr``, a choices display, a property or a method."""
        display = _DISPLAY_METHOD.fullmatch(name)
        shown = attribute(node.model, display[1]) if display else None
        if name in node.relations:
            self.related(serializer_field, node.relations[name], where)
        elif name in node.annotations:
            return
        elif display and shown is not None and getattr(shown.field, "choices", None):
            node.read_column(display[1])
        else:
            self.hinted(_hint_of(getattr(node.model, name, None)), node, where)

    def related(self, serializer_field: Field, edge: _Edge, where: str) -> None:
        """What rendering ``serializer_field`` reads from each related row of ``edge``."""
        if isinstance(serializer_field, ListSerializer):
            assert serializer_field.child is not None  # ListSerializer.__init__ asserts it too
            serializer_field, where = serializer_field.child, f"{where}[]"
        elif isinstance(serializer_field, ManyRelatedField):
            serializer_field, where = serializer_field.child_relation, f"{where}[]"
        node = edge.node
        if isinstance(serializer_field, BaseSerializer):
            self.serializer(serializer_field, node, where)
        elif isinstance(serializer_field, SlugRelatedField):
            *through, last = serializer_field.slug_field.split(LOOKUP_SEP)
            target = self.follow(node, through, where)
            if target is not None:
                target.read_column(last)
        elif isinstance(serializer_field, HyperlinkedRelatedField):
            node.read_column(serializer_field.lookup_field)
        elif isinstance(serializer_field, StringRelatedField) and _hint_of(node.model.__str__):
            self.hinted(_hint_of(node.model.__str__), node, where)  # @requires on __str__
        elif not isinstance(serializer_field, PrimaryKeyRelatedField):
            node.read_everything()  # str() or a custom field: the whole row

    def hinted(self, hint: Requirements | None, node: _Node, where: str) -> None:
        if hint is None:
            self.not_planned(node, where)
        else:
            self.hint(hint, node, where, code_reads=True)

    def hint(self, hint: Requirements, node: _Node, where: str, *, code_reads: bool) -> None:
        """Apply ``@requires``; code reads the rows of its Prefetch objects in unseen ways."""
        node.annotations.update(hint.annotate)
        for lookup in hint.prefetch:
            if isinstance(lookup, Prefetch):
                self.declare(lookup, node, where, code_reads=code_reads)
        for path in (*hint.select, *(p for p in hint.prefetch if isinstance(p, str))):
            self.read_path(path.split(LOOKUP_SEP), node, where)

    def read_path(self, names: Sequence[str], node: _Node, where: str) -> None:
        """A hint path: join or prefetch each relation; the last name is read whole."""
        *through, last = names
        target = self.through(node, through, where)
        if target is None:
            return
        found = attribute(target.model, last)
        generic_key = _generic_key(target.model, last)
        if last in target.relations or _step(target.model, last) is not None:
            self.relation_named(target, last, where).node.read_everything()
        elif generic_key is not None:
            target.generic_edge(last, generic_key)  # prefetched, the related rows whole
        elif found is not None:
            target.read_column(found.name)
        else:
            self.not_planned(target, f"{where} ({LOOKUP_SEP.join(names)}?)")

    def through(self, node: _Node, names: Sequence[str], where: str) -> _Node | None:
        """The node reached through relations ``names`` of a hint, single- or many-valued."""
        for name in names:
            if name not in node.relations and _step(node.model, name) is None:
                self.not_planned(node, f"{where} ({name}?)")
                return None
            node = self.relation_named(node, name, where).node
        return node

    def relation_named(self, node: _Node, name: str, where: str) -> _Edge:
        if name in node.relations:
            return node.relations[name]
        step = _step(node.model, name)
        assert step is not None  # the callers found a relation of this name
        return node.edge(name, step)

    def declare(self, lookup: Prefetch, node: _Node, where: str, *, code_reads: bool) -> None:
        """Place a declared Prefetch on the edge it fetches; it wins over a derived one."""
        *through, last = lookup.prefetch_through.split(LOOKUP_SEP)
        target = self.through(node, through, where)
        if target is None:
            return
        generic_key = _generic_key(target.model, last)
        if isinstance(lookup, GenericPrefetch) and generic_key is not None:
            target.generic_edge(last, generic_key).declared = lookup
            return
        step = _step(target.model, last)
        if step is None:
            self.not_planned(target, f"{where} ({lookup.prefetch_through}?)")
            return
        model = lookup.queryset.model if lookup.queryset is not None else None
        edge = target.edge(lookup.to_attr or last, step, model)
        edge.to_attr, edge.queryset = lookup.to_attr, lookup.queryset
        if code_reads:
            edge.node.read_everything()


# Turning the tree into plans, one per query: the root queryset and each prefetch queryset.


def _build(
    node: _Node, *, only: bool, unplanned: Sequence[str] = (), extra_columns: Sequence[str] = ()
) -> QueryPlan:
    select: list[str] = []
    whole_rows: set[str] = set()  # joined relations loaded with every column
    lookups: list[str | Prefetch] = []
    columns: set[str] | None = set(extra_columns) if only else None

    def join(current: _Node, query_prefix: str, attr_prefix: str) -> None:
        nonlocal columns
        if columns is not None:
            if current.columns is not None:
                columns.update(query_prefix + name for name in current.columns)
            elif query_prefix:
                whole_rows.add(query_prefix.removesuffix(LOOKUP_SEP))
            else:
                columns = None
        for edge in current.relations.values():
            query_path = query_prefix + edge.relation.name
            if edge.joinable:
                select.append(query_path)
                accessor = attr_prefix + edge.relation.accessor + LOOKUP_SEP
                join(edge.node, query_path + LOOKUP_SEP, accessor)
                continue
            lookups.append(_lookup(edge, attr_prefix + edge.relation.accessor, only=only))
            if edge.relation.kind is Kind.FOREIGN_KEY and columns is not None:
                columns.add(query_path)  # the foreign key the prefetch follows
        for name, generic in current.generic.items():
            lookups.append(generic.lookup(attr_prefix + name, only=only))
            if columns is not None:  # the content type and key the prefetch follows
                columns.update(
                    query_prefix + key for key in (generic.key.ct_field, generic.key.fk_field)
                )

    join(node, "", "")
    if columns is not None:
        # only("brand") with select_related("brand") loads every column of brand; a joined
        # relation's foreign key is loaded anyway.
        columns = (columns - set(select)) | whole_rows
    return QueryPlan(
        select_related=tuple(select),
        prefetch=tuple(lookups),
        annotations=MappingProxyType(dict(node.annotations)),
        only=tuple(sorted(columns)) if columns is not None else None,
        unplanned=tuple(unplanned),
    )


def _lookup(edge: _Edge, path: str, *, only: bool) -> str | Prefetch:
    plan = _build(edge.node, only=only, extra_columns=edge.back_pointer())
    if plan.is_empty and edge.queryset is None and edge.to_attr is None:
        return path
    queryset = edge.queryset if edge.queryset is not None else edge.default_queryset()
    return PlannedPrefetch(path, queryset=plan.apply(queryset), plan=plan, to_attr=edge.to_attr)


def _model_of(serializer_class: type[BaseSerializer]) -> type[models.Model] | None:
    return getattr(getattr(serializer_class, "Meta", None), "model", None)


@functools.cache
def plan_for(serializer_class: type[BaseSerializer], *, only: bool = False) -> QueryPlan:
    """The plan for rendering querysets with ``serializer_class``; computed once per class.

    With ``only=True`` each query also loads only the columns rendering reads. A serializer
    that cannot be planned gets an empty plan that names it in ``unplanned``.
    """
    name = serializer_class.__name__
    model = _model_of(serializer_class)
    if model is None:
        return QueryPlan(unplanned=(name,))
    walk = _Walk()
    root = _Node(model)
    try:
        walk.serializer(serializer_class(), root, name)
        return _build(root, only=only, unplanned=walk.unplanned)
    except Exception as exc:  # once per class (plan_for is cached): a warning, no traceback
        logger.warning("drf-scale could not plan %s: it renders unoptimized (%r)", name, exc)
        return QueryPlan(unplanned=(name,))


def unplanned_fetch_mode() -> Any:
    """How instances of a planned queryset fetch what the plan did not load (Django 6.1+),
    by ``UNPLANNED_FETCH``: ``FETCH_PEERS`` ("peers": one query per relation for all the
    rows, not one per row), ``FETCH_RAISE`` ("raise": ``FieldFetchBlocked`` naming the model
    and field) or ``FETCH_ONE`` ("one"). None before Django 6.1."""
    if not hasattr(models, "FETCH_PEERS"):
        return None
    modes = {"peers": "FETCH_PEERS", "raise": "FETCH_RAISE", "one": "FETCH_ONE"}
    return getattr(models, modes[scale_settings.UNPLANNED_FETCH])


def with_unplanned_fetch_mode(queryset: QuerySet) -> QuerySet:
    """``queryset`` with ``unplanned_fetch_mode()``, unless it declares a fetch mode."""
    mode = unplanned_fetch_mode()
    # _fetch_mode: the QuerySet's own state (Django 6.1), absent from django-stubs
    if mode is None or queryset._fetch_mode is not models.FETCH_ONE:  # type: ignore[attr-defined]
        return queryset
    return queryset.fetch_mode(mode)


def optimize(
    queryset: AnyQuerySet, serializer_class: type[BaseSerializer], *, only: bool = False
) -> QuerySet:
    """``queryset`` loading what ``serializer_class`` renders, in a fixed number of queries.

    ``queryset`` may be a manager, as DRF's ``GenericAPIView.queryset`` may. A queryset of
    another model than the serializer's is returned as it is.
    """
    queryset = queryset_of(queryset)
    model = _model_of(serializer_class)
    if model is None or not issubclass(queryset.model, model):
        return queryset
    # mypy#11470: classes are Hashable, as functools.cache requires
    return plan_for(serializer_class, only=only).apply(queryset)  # type: ignore[arg-type]
