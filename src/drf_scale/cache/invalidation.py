"""Which cached objects a write makes stale, and their invalidation after the commit.

A cached view registers its read serializers (``register``): a product serializer that
embeds the brand, the category and its parent, the tags and the latest reviews makes the
product depend on the rows at the paths "", "brand", "category", "category__parent", "tags"
and "reviews". A save or delete of any such row, and an M2M change on the way, invalidates
every product that reaches it, found by a query on those paths after the commit (so a product
that joined the brand meanwhile is found too) or before a delete (when the relation still
exists). A row that holds the foreign key of its path (a review's product) also invalidates
the object it pointed at before the save.

Signals cover ``save()``, ``delete()`` (cascades included) and M2M changes; ``CachedQuerySet``
(``CachedManager``) covers ``update()``, ``delete()``, ``bulk_create()`` and ``bulk_update()``.
Raw SQL is invisible: call ``invalidate(Model, pks)`` or ``invalidate_model(Model)``.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.db import models, router
from django.db.models import Prefetch
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

from drf_scale.cache.store import Unavailable, get_store
from drf_scale.conf import scale_settings
from drf_scale.edge import list_key, model_key, object_key, purge_after_commit
from drf_scale.model_meta import Kind, Relation, concrete_model, link_field, walk
from drf_scale.oncommit import after_commit
from drf_scale.planner import QueryPlan, plan_for

__all__ = [
    "CachedManager",
    "CachedQuerySet",
    "invalidate",
    "invalidate_model",
    "load_views",
    "surrogate_keys",
]

logger = logging.getLogger("drf_scale.cache")

Roots = dict[type[models.Model], set[Any]]
_UID = "drf_scale.cache"


# The hops whose far row holds the key: a review (reverse foreign key), a product's warranty
# (reverse one-to-one), a generic relation's row.
HOLDER_KINDS = (Kind.REVERSE_FOREIGN_KEY, Kind.REVERSE_ONE_TO_ONE, Kind.GENERIC_RELATION)


@dataclass(frozen=True)
class Dependency:
    """``root`` objects embed rows of another model at ``path`` ("" for the root's own row)."""

    root: type[models.Model]
    path: str

    @functools.cached_property
    def last_hop(self) -> Relation | None:
        """The relation of the last hop of the path."""
        steps = walk(self.root, self.path)
        return steps[-1] if steps else None

    @functools.cached_property
    def holds_pointer(self) -> bool:
        (
            """Whether the row at the path holds the foreign key of its last hop (a review, a
        product's warranty): moving it to another root changes that root and the one it left."""
            ""
        )
        hop = self.last_hop
        return hop is not None and hop.kind in HOLDER_KINDS

    def roots(self, pks: Iterable[Any]) -> set[Any]:
        """The pks of the roots that reach any of these rows, read now."""
        pks = set(pks)
        if not pks:
            return set()
        if not self.path:
            return pks
        lookup = {f"{self.path}__in": pks}
        rows = self.root._base_manager.using(router.db_for_write(self.root))  # never a replica
        return set(rows.filter(**lookup).values_list("pk", flat=True).distinct())


class Registry:
    """The dependencies of every registered serializer, by the model of the row changed."""

    def __init__(self) -> None:
        self.by_model: dict[type[models.Model], set[Dependency]] = defaultdict(set)
        self.roots: set[type[models.Model]] = set()
        # Serializers embedding rows whose writes cannot be traced back (a generic foreign
        # key's target: any model), and why: their representations are never cached.
        self.untracked: dict[Any, str] = {}
        self.registered: set[Any] = set()  # the serializers whose dependencies are known
        self._embedded: dict[type[models.Model], list[Dependency]] = {}  # by root, derived
        self.lock = threading.Lock()

    def register(self, serializer_class: Any, extra_paths: Iterable[str] = ()) -> None:
        """Record what ``serializer_class``'s representations embed, plus ``extra_paths``
        (relations its annotations read, which the plan cannot see)."""
        root = serializer_class.Meta.model
        paths = {"", *_plan_paths(plan_for(serializer_class)), *extra_paths}
        with self.lock:
            self.roots.add(root)
            self.registered.add(serializer_class)
            self._embedded.clear()
            for path in sorted(paths):
                names = path.split("__") if path else []
                try:
                    steps = walk(root, path)
                except ValueError as error:  # a generic foreign key on the way
                    self.untracked.setdefault(serializer_class, f"{path!r}: {error}")
                    continue
                for depth, step_model in enumerate([root, *(s.related_model for s in steps)]):
                    model = concrete_model(step_model)
                    self.by_model[model].add(Dependency(root, "__".join(names[:depth])))
                    # Per model: a delete receiver for every model would end fast deletes.
                    pre_delete.connect(_pre_delete, sender=model, dispatch_uid=_UID)
                    post_delete.connect(_post_delete, sender=model, dispatch_uid=_UID)

    def tracks(self, serializer_class: Any) -> bool:
        """Whether every row ``serializer_class``'s representations embed is traced back: it
        was registered (a view's ``get_serializer_class()`` may answer another class), and
        nothing on its paths escapes (a generic foreign key)."""
        return serializer_class in self.registered and serializer_class not in self.untracked

    def dependencies(self, model: type[models.Model]) -> set[Dependency]:
        return self.by_model.get(concrete_model(model), set())

    def embedded(self, root: type[models.Model]) -> list[Dependency]:
        """The paths of rows ``root``'s representations embed whose changes do not move them
        (not the root's own row, nor a row holding the key of its hop: a review)."""
        known = self._embedded.get(root)  # asked on every cache miss: found once per root
        if known is None:
            with self.lock:  # not while a registration changes what it is found from
                found = {d for deps in self.by_model.values() for d in deps if d.root is root}
                paths = (d for d in found if d.path and not d.holds_pointer)
                known = self._embedded[root] = sorted(paths, key=lambda d: d.path)
        return known


def _plan_paths(plan: QueryPlan, prefix: str = "") -> Iterable[str]:
    yield from (prefix + path for path in plan.select_related)
    for lookup in plan.prefetch:
        if isinstance(lookup, str):
            yield prefix + lookup
            continue
        assert isinstance(lookup, Prefetch)
        yield prefix + lookup.prefetch_through
        inner = getattr(lookup, "plan", None)
        if inner is not None:
            yield from _plan_paths(inner, f"{prefix}{lookup.prefetch_through}__")


registry = Registry()


def roots_of(model: type[models.Model], pks: Iterable[Any], *, holders_only: bool = False) -> Roots:
    """The cached roots that embed these rows of ``model``, read now."""
    found: Roots = defaultdict(set)
    pks = list(pks)
    for dependency in registry.dependencies(model):
        if holders_only and not dependency.holds_pointer:
            continue
        found[dependency.root] |= dependency.roots(pks)
    return found


def _merge(*parts: Roots) -> Roots:
    merged: Roots = defaultdict(set)
    for part in parts:
        for model, pks in part.items():
            merged[model] |= pks
    return merged


def _after_commit(compute: Callable[[], Roots], model: type[models.Model]) -> None:
    """Invalidate the roots ``compute`` finds, once the transaction writing ``model`` commits.

    Should that fail (the database or the store gone right after the commit), the store
    orphans every entry instead: never a stale read."""
    after_commit(
        lambda: _invalidate(compute()),
        name="cache invalidation",
        using=router.db_for_write(model),
        on_failure=_lost,
    )


def _lost() -> None:
    get_store().lost_invalidation()


def changed(model: type[models.Model], pks: Iterable[Any], before: Roots | None = None) -> None:
    """Invalidate, after the commit, the roots of these rows as they are then, and ``before``
    (the roots found before the change)."""
    if not registry.dependencies(model):
        return
    pks = [pk for pk in pks if pk is not None]
    _after_commit(lambda: _merge(roots_of(model, pks), before or {}), model)
    purge_after_commit(
        lambda: _changed_keys(model, pks, before or {}), model, lambda: _every_key_of(model)
    )


def _invalidate(roots: Roots, models_: Sequence[type[models.Model]] = ()) -> None:
    objects = {model._meta.label_lower: pks for model, pks in roots.items() if pks}
    labels = [model._meta.label_lower for model in models_]
    if not objects and not labels:
        return
    try:
        get_store().invalidate(objects, labels)
    except Unavailable:  # the store renews its epoch at its next contact with Redis
        logger.warning("drf-scale: an invalidation was lost; the cache epoch will be renewed")


def surrogate_keys(
    root: type[models.Model], pks: Sequence[Any], using: str | None = None
) -> dict[Any, tuple[str, ...]]:
    """The edge keys of each of these roots' representations: its own, those of the rows it
    embeds (one query a path), and its model's. A write to an embedded row purges its key."""
    keys: dict[Any, list[str]] = {pk: [object_key(root, pk)] for pk in pks}
    rows = root._base_manager.using(using or router.db_for_read(root)).filter(pk__in=pks)
    for dependency in registry.embedded(root):
        hop = dependency.last_hop
        assert hop is not None  # embedded paths are not the root's own
        label = concrete_model(hop.related_model)._meta.label_lower
        pairs = rows.values_list("pk", f"{dependency.path}__pk").order_by().distinct()
        for pk, embedded in pairs:
            if embedded is not None and pk in keys:
                keys[pk].append(object_key(label, embedded))
    return {pk: (*dict.fromkeys(found), model_key(root)) for pk, found in keys.items()}


def _root_keys(roots: Roots) -> set[str]:
    """The keys of these roots and of every list of their models."""
    keys = {object_key(model, pk) for model, pks in roots.items() for pk in pks}
    return keys | {list_key(model) for model in roots}


def _changed_keys(model: type[models.Model], pks: Sequence[Any], before: Roots) -> set[str]:
    """The keys a write of these rows makes stale: the rows' own (every response embedding
    them names it), the roots a row holding a key now reaches or left (``before``), and the
    lists of every model that embeds them."""
    keys = {object_key(model, pk) for pk in pks}
    keys |= {list_key(dependency.root) for dependency in registry.dependencies(model)}
    return keys | _root_keys(_merge(roots_of(model, pks, holders_only=True), before))


def _every_key_of(model: type[models.Model]) -> set[str]:
    """Every response of the models whose representations embed ``model`` (no query)."""
    roots = {dependency.root for dependency in registry.dependencies(model)}
    return {key(root) for root in roots for key in (model_key, list_key)}


def invalidate(model_or_obj: type[models.Model] | models.Model, pks: Iterable[Any] = ()) -> None:
    """Invalidate an object (``invalidate(obj)``) or rows by pk (``invalidate(Model, pks)``)
    and everything that embeds them, after the current transaction commits."""
    if isinstance(model_or_obj, models.Model):
        model, pks = type(model_or_obj), [model_or_obj.pk]
    else:
        model = model_or_obj
    changed(model, pks)


def invalidate_model(model: type[models.Model]) -> None:
    """Invalidate, after the commit, every cached representation embedding rows of ``model``."""
    roots = sorted({d.root for d in registry.dependencies(model)}, key=lambda m: m._meta.label)
    after_commit(
        lambda: _invalidate({}, roots),
        name="cache invalidation",
        using=router.db_for_write(model),
        on_failure=_lost,
    )
    purge_after_commit(lambda: _every_key_of(model), model)


# Signals: save, delete and M2M changes of any model a cached representation embeds.

_BEFORE = "_drf_scale_roots_before"


def _pre_save(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    if instance._state.adding or kwargs.get("raw") or not registry.dependencies(sender):
        return
    setattr(instance, _BEFORE, roots_of(sender, [instance.pk], holders_only=True))


def _post_save(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    if not kwargs.get("raw"):
        changed(sender, [instance.pk], instance.__dict__.pop(_BEFORE, None))


def _pre_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    if registry.dependencies(sender):
        setattr(instance, _BEFORE, roots_of(sender, [instance.pk]))


def _post_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    before = instance.__dict__.pop(_BEFORE, None)
    if before:
        _after_commit(lambda: before, sender)
        gone = object_key(sender, instance.pk)  # now: Django clears the pk after the delete
        purge_after_commit(lambda: _root_keys(before) | {gone}, sender)


def _m2m_changed(sender: Any, instance: models.Model, action: str, **kwargs: Any) -> None:
    """A link added or removed changes, for every path through it, the row it leaves from."""
    other = kwargs["model"]
    if action not in ("post_add", "post_remove", "pre_clear") or not (
        registry.dependencies(type(instance)) or registry.dependencies(other)
    ):
        return
    reverse = kwargs["reverse"]
    owner = other if reverse else type(instance)
    field = link_field(owner, sender)
    pks = kwargs.get("pk_set")
    if pks is None:  # clear: the links about to go
        mine, other = field.m2m_field_name(), field.m2m_reverse_field_name()
        if reverse:
            mine, other = other, mine
        links = sender._base_manager.using(kwargs["using"])  # where the links change
        pks = set(links.filter(**{mine: instance.pk}).values_list(other, flat=True))
    forward_pks, backward_pks = (set(pks), {instance.pk}) if reverse else ({instance.pk}, set(pks))
    hops: list[tuple[Dependency, set[Any]]] = []  # the rows the changed links leave from
    for model in (field.model, field.related_model):
        for dependency in registry.dependencies(model):
            hop = dependency.last_hop
            if hop is None or hop.declaring_field != field:
                continue
            leaving = forward_pks if hop.forward else backward_pks
            hops.append((Dependency(dependency.root, _head(dependency.path)), leaving))
    if hops:
        roots = functools.cache(lambda: _merge(*({d.root: d.roots(p)} for d, p in hops)))
        _after_commit(roots, type(instance))
        owner = type(instance)
        purge_after_commit(lambda: _root_keys(roots()), owner, lambda: _every_key_of(owner))


def _head(path: str) -> str:
    return path.rpartition("__")[0]


_views_lock = threading.RLock()  # the importing thread may query, and so come back here
_views = {"loaded": False, "loading": False}


def view_modules() -> list[str]:
    """The modules whose import defines every cached view: CACHE_VIEW_MODULES, else the
    URLconf (which imports the views it routes)."""
    from django.conf import settings

    modules = scale_settings.CACHE_VIEW_MODULES
    if modules is None:
        root = getattr(settings, "ROOT_URLCONF", None)
        modules = [root] if isinstance(root, str) else []
    return list(modules)


def load_views(*args: Any, **kwargs: Any) -> None:
    """Import the views once per process, so every cached view has registered what it embeds.

    Connected to ``connection_created``: a process (web, Celery worker, management command)
    opens a connection before its first write, and learns the dependencies then, not at
    startup. Other threads wait until the import is done.
    """
    if _views["loaded"]:
        return
    with _views_lock:
        if _views["loaded"] or _views["loading"]:
            return
        _views["loading"] = True
        try:
            for module in view_modules():
                import_module(module)
            _views["loaded"] = True
        except Exception:  # a broken URLconf: its own error surfaces on the first request
            logger.exception("drf-scale: the URLconf could not be imported")
        finally:
            _views["loading"] = False


def connect_signals() -> None:
    """Called once from the app's ready(); delete receivers connect per registered model."""
    pre_save.connect(_pre_save, dispatch_uid=_UID)
    post_save.connect(_post_save, dispatch_uid=_UID)
    m2m_changed.connect(_m2m_changed, dispatch_uid=_UID)


# Bulk operations: the queryset of a model whose rows cached representations embed.


class CachedQuerySet(models.QuerySet):
    """update(), delete(), bulk_create() and bulk_update() that invalidate what they change."""

    def _written_pks(self) -> list[Any]:
        """The pks of the rows the write is about to change, read where it writes."""
        rows = self._chain()  # type: ignore[attr-defined]
        rows._for_write = True  # its db: the write's, as update() and delete() choose it
        return list(rows.values_list("pk", flat=True))

    def update(self, **kwargs: Any) -> int:
        if not registry.dependencies(self.model):
            return super().update(**kwargs)
        pks = self._written_pks()
        before = roots_of(self.model, pks, holders_only=True)
        count = super().update(**kwargs)
        changed(self.model, pks, before)
        return count

    def delete(self) -> tuple[int, dict[str, int]]:
        # Signals see each deleted row unless Django deletes without fetching (no receivers
        # would mean no cache); the roots are still read here, before the rows go.
        if not registry.dependencies(self.model):
            return super().delete()
        pks = self._written_pks()
        before = roots_of(self.model, pks)
        result = super().delete()
        changed(self.model, [], before)
        return result

    def bulk_create(self, objs: Iterable[models.Model], *args: Any, **kwargs: Any) -> list:
        created = super().bulk_create(objs, *args, **kwargs)
        changed(self.model, [obj.pk for obj in created])
        return created

    def bulk_update(
        self, objs: Iterable[models.Model], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        objs = list(objs)
        pks = [obj.pk for obj in objs]
        before = roots_of(self.model, pks, holders_only=True)
        count = super().bulk_update(objs, fields, batch_size=batch_size)
        changed(self.model, pks, before)
        return count


CachedManager = models.Manager.from_queryset(CachedQuerySet)
