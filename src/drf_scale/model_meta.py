"""Model metadata: what a name on a model is, and where a relation leads.

The planner, the read plan compiler and the cache invalidation graph all walk relations; this
is the one place that reads Django's ``_meta`` for them. ``attribute(Product, name)`` resolves
a name as instances and serializer sources use it (``"brand"``, ``"brand_id"``, ``"reviews"``,
``"pk"``): a ``ModelField``, a ``Relation`` or None. ``walk(Product, "category__parent")``
follows a path of lookup names, as ``filter()`` and ``select_related()`` use them.

``expand_ordering(Device, ["maker", "name"])`` spells an ordering as the columns Django's
compiler orders a model queryset by: ``["maker__name", "name"]`` when Maker is ordered by name.

Django 6.0 made ``ManyToManyField.concrete`` False: many-to-many fields are told by class.
Generic foreign keys (no single related model) are fields that are no column; generic
relations are relations ``relation()`` does not return: the compiler cannot read them, the
planner prefetches both (``drf_scale.planner``).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.constants import LOOKUP_SEP
from django.db.models.expressions import OrderBy

__all__ = [
    "Kind",
    "ModelField",
    "Relation",
    "attribute",
    "column_attname",
    "concrete_model",
    "expand_ordering",
    "link_field",
    "pk_attname",
    "relation",
    "walk",
]


class Kind(enum.Enum):
    """The shape of a relation, seen from the model it leaves."""

    FOREIGN_KEY = "foreign key"  # a foreign key or one-to-one of the model: its rows hold the key
    REVERSE_ONE_TO_ONE = "reverse one-to-one"  # also the reverse of a generic relation
    MANY_TO_MANY = "many-to-many"
    REVERSE_FOREIGN_KEY = "reverse foreign key"
    REVERSE_MANY_TO_MANY = "reverse many-to-many"
    GENERIC_RELATION = "generic relation"  # not planned
    FOREIGN_OBJECT = "foreign object"  # a relation without a column of its own: not planned


_FORWARD = frozenset(
    {Kind.FOREIGN_KEY, Kind.MANY_TO_MANY, Kind.GENERIC_RELATION, Kind.FOREIGN_OBJECT}
)
_MANY = frozenset(
    {Kind.MANY_TO_MANY, Kind.REVERSE_FOREIGN_KEY, Kind.REVERSE_MANY_TO_MANY, Kind.GENERIC_RELATION}
)
_UNPLANNED = frozenset({Kind.GENERIC_RELATION, Kind.FOREIGN_OBJECT})


@dataclass(frozen=True)
class ModelField:
    """A model field that is no relation step: a column, or a generic foreign key.

    A foreign key named by its attname (``"brand_id"``, or ``"pk"`` for a parent link) is a
    column here; named by its name it is a ``Relation``.
    """

    name: str  # the field's name: what only() and values() take
    attname: str  # the instance attribute holding the value
    field: models.Field[Any, Any]
    column: bool  # False: a relation to no single model (a generic foreign key)
    concrete: bool  # it has a column in the model's table


@dataclass(frozen=True)
class Relation:
    """One step from the rows of ``model`` to those of ``related_model``."""

    name: str  # the lookup name: select_related(), values() and filter() paths
    accessor: str  # the instance attribute: prefetch_related() paths and serializer sources
    kind: Kind
    model: type[models.Model]  # the model the step leaves from
    related_model: type[models.Model]
    field: (
        models.Field[Any, Any] | models.ForeignObjectRel
    )  # Django's relation field, or its reverse relation (ForeignObjectRel)
    attname: str | None  # a foreign key's instance attribute holding the key, else None
    null: bool  # a to-one step that may find no row (a nullable key, a reverse one-to-one)
    back: str  # the lookup name from the related rows back to ``model``'s

    @property
    def forward(self) -> bool:
        """Declared on ``model`` (not a reverse relation)."""
        return self.kind in _FORWARD

    @property
    def many(self) -> bool:
        """It reaches many rows: a many-to-many, a reverse foreign key, a generic relation."""
        return self.kind in _MANY

    @property
    def plannable(self) -> bool:
        """The compiler can join or prefetch it (the planner also prefetches a generic relation)."""
        return self.kind not in _UNPLANNED

    @property
    def declaring_field(self) -> models.Field[Any, Any]:
        """The field that declares the relation, on ``model`` or, reverse, on ``related_model``."""
        field = self.field
        return field.field if isinstance(field, models.ForeignObjectRel) else field

    @property
    def parent_key(self) -> str:
        """The column of ``model``'s rows that the related rows of a to-many step point to."""
        if self.kind is Kind.REVERSE_FOREIGN_KEY:
            return self.declaring_field.target_field.attname  # type: ignore[attr-defined]
        return pk_attname(self.model)

    @property
    def key_names(self) -> tuple[str, ...]:
        """The names in ``related_model`` of the value a foreign key holds: its target field's."""
        target = self.declaring_field.target_field  # type: ignore[attr-defined]
        return (target.name, target.attname, *(("pk",) if target.primary_key else ()))


def _relation(model: type[models.Model], field: Any) -> Relation | None:
    """The relation ``field`` of ``model`` is, if it reaches one model."""
    related = field.related_model
    if not field.is_relation or related is None:
        return None
    attname, null = None, False
    if isinstance(field, models.ForeignObjectRel):
        if field.one_to_many:
            kind = Kind.REVERSE_FOREIGN_KEY
        elif field.many_to_many:
            kind = Kind.REVERSE_MANY_TO_MANY
        else:
            kind, null = Kind.REVERSE_ONE_TO_ONE, True
        accessor, back = field.get_accessor_name() or field.name, field.field.name
    else:
        # Django 6.0 made ManyToManyField non-concrete: test for it by class, not by ``concrete``.
        if isinstance(field, models.ManyToManyField) or field.many_to_many:  # django-taggit too
            kind = Kind.MANY_TO_MANY
        elif field.concrete:
            kind, attname, null = Kind.FOREIGN_KEY, field.attname, bool(field.null)
        elif field.one_to_many:
            kind = Kind.GENERIC_RELATION
        else:
            kind, null = Kind.FOREIGN_OBJECT, bool(field.null)
        accessor, back = field.name, field.related_query_name()
    return Relation(field.name, accessor, kind, model, related, field, attname, null, back)


@functools.cache
def _attributes(
    model: type[models.Model],
) -> tuple[Mapping[str, ModelField | Relation], Mapping[str, Relation]]:
    """By instance attribute name: what each name is, and the relation of each relation field."""
    named: dict[str, Any] = {"pk": model._meta.pk}
    for model_field in model._meta.get_fields():
        if isinstance(model_field, models.ForeignObjectRel):
            accessor = model_field.get_accessor_name()
            if accessor:
                named[accessor] = model_field
        else:
            named[model_field.name] = model_field
            if model_field.concrete:
                named[model_field.attname] = model_field
    attributes: dict[str, ModelField | Relation] = {}
    relations: dict[str, Relation] = {}
    steps: dict[int, Relation | None] = {}
    for name, field in named.items():
        if id(field) not in steps:
            steps[id(field)] = _relation(model, field)
        step = steps[id(field)]
        if step is not None:
            relations[name] = step
        if step is None or (field.concrete and name != field.name):
            # a column, a foreign key read by its attname, or a generic foreign key
            column = not field.is_relation or (field.concrete and name != field.name)
            attributes[name] = ModelField(field.name, field.attname, field, column, field.concrete)
        else:
            attributes[name] = step
    return MappingProxyType(attributes), MappingProxyType(relations)


def attribute(model: type[models.Model], name: str) -> ModelField | Relation | None:
    """What the instance attribute ``name`` of ``model`` is: a field, a relation, or neither
    (a property, a method, an annotation, or nothing)."""
    return _attributes(model)[0].get(name)


def relation(model: type[models.Model], name: str) -> Relation | None:
    """The relation the planner can follow from attribute ``name`` of ``model``: a foreign
    key, one-to-one or many-to-many field (also by its attname), or a reverse relation."""
    found = _attributes(model)[1].get(name)
    return found if found is not None and found.plannable else None


def column_attname(model: type[models.Model], name: str) -> str | None:
    """The instance attribute of the column ``values(name)`` reads, or None: no column."""
    found = attribute(model, name)
    if isinstance(found, ModelField):
        return found.attname if found.concrete else None
    return found.attname if found is not None else None


@functools.cache
def _lookup(model: type[models.Model], name: str) -> Relation:
    found = _relation(model, model._meta.get_field(name))
    if found is None:
        raise ValueError(f"{model.__name__}.{name} is no relation to a model")
    return found


@functools.cache
def walk(model: type[models.Model], path: str) -> tuple[Relation, ...]:
    """The relations of a lookup path (``"category__parent"``; ``""``: none), in order.

    Raises FieldDoesNotExist for an unknown name, ValueError for one that is no relation.
    """
    steps: list[Relation] = []
    for name in path.split(LOOKUP_SEP) if path else ():
        steps.append(_lookup(model, name))
        model = steps[-1].related_model
    return tuple(steps)


def link_field(model: type[models.Model], through: Any) -> models.ManyToManyField[Any, Any]:
    """The many-to-many field of ``model`` whose link rows are those of ``through``."""
    return next(f for f in model._meta.many_to_many if f.remote_field.through is through)


def concrete_model(model: type[models.Model]) -> type[models.Model]:
    """The model whose table holds ``model``'s rows (itself, unless a proxy)."""
    concrete = model._meta.concrete_model
    assert concrete is not None  # ModelBase sets it on every model class
    return concrete


def pk_attname(model: type[models.Model]) -> str:
    """The instance attribute holding the primary key."""
    return model._meta.pk.attname


def expand_ordering(
    model: type[models.Model], ordering: Sequence[Any], *, skip: Collection[str] = ()
) -> tuple[Any, ...]:
    """``ordering`` of ``model`` with each name of a relation to an ordered model replaced by
    that model's ordering, prefixed and in its direction, at any depth: what Django's compiler
    orders a model queryset by (``SQLCompiler.find_ordering_name``).

    ``values("maker")`` selects the key under the name ``maker``, and Django then orders by that
    column (``ORDER BY 3``), not by Maker's ordering; a ``values()`` query ordered by the
    expanded names orders as the model queryset does. Names in ``skip`` (annotations), names
    Django resolves otherwise (a transform, ``pk``, a foreign key's attname) and expressions
    stay as they are.
    """
    return tuple(_expand(model, ordering, "", "ASC", skip, frozenset()))


def _expand(
    model: type[models.Model],
    ordering: Sequence[Any],
    prefix: str,
    default: str,
    skip: Collection[str],
    seen: frozenset[tuple[type[models.Model], str]],
) -> Iterator[Any]:
    for item in ordering:
        if hasattr(item, "resolve_expression"):
            if prefix:  # a related model's ordering: in the relation's direction, then prefixed
                if not isinstance(item, OrderBy):
                    item = item.desc() if default == "DESC" else item.asc()
                item = item.prefix_references(prefix)
            yield item
            continue
        name, order = item.removeprefix("-"), default
        if item.startswith("-"):  # "-" reverses the direction it is in: Django's get_order_dir
            order = "ASC" if default == "DESC" else "DESC"
        related = None if item == "?" or (not prefix and name in skip) else _ordered(model, name)
        if related is None or (model, name) in seen:  # a loop: Django's to resolve or refuse
            yield item if item == "?" else f"{'-' if order == 'DESC' else ''}{prefix}{name}"
            continue
        path = f"{prefix}{name}{LOOKUP_SEP}"
        yield from _expand(
            related, related._meta.ordering or (), path, order, (), seen | {(model, name)}
        )


def _ordered(model: type[models.Model], name: str) -> type[models.Model] | None:
    """The related model, with an ordering, that lookup ``name`` of ``model`` ends at, if any."""
    if name == "pk":
        return None
    pieces = name.split(LOOKUP_SEP)
    field: Any = None
    for piece in pieces:
        if field is not None:
            model = field.related_model
            if not field.is_relation or model is None:
                return None  # a transform, or through a generic foreign key
        try:
            field = model._meta.get_field(piece)
        except FieldDoesNotExist:
            return None  # "pk" inside a path, a transform: Django resolves it
    related = field.related_model if field.is_relation else None
    if (
        related is None
        or not related._meta.ordering
        or getattr(field, "attname", None) == pieces[-1]
    ):
        return None
    return related
