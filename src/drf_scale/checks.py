"""Django system checks for drf-scale (ids drf_scale.E001 / W001 ...).

check_settings reports what is wrong with DRF_SCALE (E060 to E063); the other checks read
it, and are skipped until it is right.
"""

import functools
import inspect
import os
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from typing import Any, TypeVar

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.models import Model, deletion
from django.urls import URLResolver, get_resolver
from rest_framework.generics import GenericAPIView
from rest_framework.serializers import (
    BaseSerializer,
    ListSerializer,
    ModelSerializer,
    SerializerMethodField,
)
from rest_framework.views import APIView

from drf_scale.cache.views import CachedListMixin, CachedViewMixin
from drf_scale.conf import scale_settings, user_settings, validate
from drf_scale.db import REPLICA_OF, is_persistent, pool_max_size
from drf_scale.fast import compile_read_plan
from drf_scale.mixins import (
    FastReadMixin,
    OptimizedQuerysetMixin,
    ReadPathMixin,
    ReadWriteSerializerMixin,
)
from drf_scale.pagination import KeysetPagination, ordering_index, resolve_ordering
from drf_scale.planner import plan_for
from drf_scale.sqljson import compile_database_plan

__all__: list[str] = []

T = TypeVar("T")

PLANNED_ACTIONS = ("list", "retrieve")
# Django 6.1's database-level on_delete; nothing on older versions.
_DATABASE_ON_DELETE: tuple[type, ...] = tuple(
    filter(None, [getattr(deletion, "DatabaseOnDelete", None)])
)


# DRF_SCALE itself: unknown keys, wrong types, values outside their choices, import strings
# that do not import (E060 to E063), all found by drf_scale.conf.validate.

Check = Callable[..., list[CheckMessage]]


@register("drf_scale")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E060: an unknown key; E061: a wrong type or value; E062: not one of the choices;
    E063: an import string that does not import the class it should."""
    return [
        Error(problem.message, hint=problem.hint, id=problem.id)
        for problem in validate(user_settings())
    ]


def _reads_settings(check: Check) -> Check:
    """The other checks read DRF_SCALE, which raises while it is invalid: they wait until
    check_settings has nothing to report."""

    @functools.wraps(check)
    def checked(*args: Any, **kwargs: Any) -> list[CheckMessage]:
        return [] if validate(user_settings()) else check(*args, **kwargs)

    return checked


def _subclasses(cls: type[T]) -> Iterator[type[T]]:
    """The subclasses of ``cls`` at any depth, but drf_scale's own (bases, not views)."""
    for subclass in cls.__subclasses__():
        if not _ours(subclass):
            yield subclass
        yield from _subclasses(subclass)


def _view_for(view_class: type, action: str) -> Any:
    """An instance of ``view_class`` as a GET ``action`` request by an anonymous user sees it:
    ``get_serializer_class()`` may read ``self.request``."""
    from django.contrib.auth.models import AnonymousUser
    from rest_framework.test import APIRequestFactory

    # action_map: a viewset's initialize_request() sets action from it, as its as_view() does.
    view = view_class(
        action=action, action_map={"get": action}, format_kwarg=None, args=(), kwargs={}
    )
    request = view.initialize_request(APIRequestFactory().get("/"))
    request.user = AnonymousUser()
    view.request = request
    return view


def _read_serializers(view_class: type) -> tuple[set[type], dict[str, Exception]]:
    """The serializer classes a view renders its planned actions with, and what
    ``get_serializer_class()`` raised for the actions it could not say."""
    found: set[type] = set()
    failures: dict[str, Exception] = {}
    for action in PLANNED_ACTIONS:
        try:
            found.add(_view_for(view_class, action).get_serializer_class())
        except Exception as exc:  # an abstract base view, or one that needs more of a request
            failures[action] = exc
    return found, failures


def _serializer_classes(view_class: type) -> set[type]:
    """The serializer classes a view renders its planned actions with, where it can say."""
    return _read_serializers(view_class)[0]


def _uninspected(view_class: type, checks: str, check_id: str) -> list[CheckMessage]:
    """``check_id``: the checks could not learn the serializer class of a routed view."""
    by_error: dict[str, list[str]] = {}
    for action, exc in _read_serializers(view_class)[1].items():
        by_error.setdefault(f"{type(exc).__name__}: {exc}", []).append(action)
    return [
        Warning(
            f"{checks} could not inspect {view_class.__module__}.{view_class.__qualname__}: "
            f"its get_serializer_class() raised {error} for a GET {' and '.join(actions)} "
            "request by an anonymous user.",
            hint="Let get_serializer_class() answer for such a request (it has no URL "
            f"arguments), or silence {check_id} and check this view's serializers by hand.",
            obj=view_class,
            id=check_id,
        )
        for error, actions in by_error.items()
    ]


@register("drf_scale")
@_reads_settings
def check_query_plans(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W001: a serializer of an OptimizedQuerysetMixin view has fields the planner cannot see;
    W002: a routed one whose serializer class W001 could not learn."""
    routed = _routed_view_classes()  # imports the views
    messages: list[CheckMessage] = []
    for view_class in sorted(set(_subclasses(OptimizedQuerysetMixin)), key=str):
        if view_class in routed:  # unrouted ones may be abstract bases
            messages += _uninspected(view_class, "Check W001", "drf_scale.W002")
        for serializer_class in sorted(_serializer_classes(view_class), key=str):
            unplanned = plan_for(serializer_class).unplanned
            if unplanned:
                messages.append(
                    Warning(
                        f"{serializer_class.__name__} has fields the query planner cannot see: "
                        f"{', '.join(unplanned)}; they may query once per row.",
                        hint="Declare what they read with @drf_scale.planner.requires(...).",
                        obj=view_class,
                        id="drf_scale.W001",
                    )
                )
    return messages


# Connections: settings that hold up in a test and fail under load (E021 to E025; a bad
# SERVER_MODE is E062).


@register("drf_scale")
@_reads_settings
def check_connection_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E021 to E024: DATABASES entries unsafe for the server mode or their pooler."""
    server = scale_settings.SERVER_MODE
    messages: list[CheckMessage] = []
    for alias, config in settings.DATABASES.items():
        if server == "asgi" and is_persistent(config):
            messages.append(
                Error(
                    f"DATABASES[{alias!r}] keeps connections (CONN_MAX_AGE > 0) under ASGI, "
                    "where every request runs in a new thread: connections leak.",
                    hint="Set CONN_MAX_AGE to 0, or use a pool or PgBouncer.",
                    id="drf_scale.E021",
                )
            )
        if pool_max_size(config) and is_persistent(config):
            messages.append(
                Error(
                    f"DATABASES[{alias!r}] has a connection pool and CONN_MAX_AGE > 0; "
                    "Django refuses the pair at the first query.",
                    hint="Set CONN_MAX_AGE to 0: the pool keeps the connections.",
                    id="drf_scale.E022",
                )
            )
        if config.get("DRF_SCALE_MODE") == "pgbouncer":
            if not config.get("DISABLE_SERVER_SIDE_CURSORS"):
                messages.append(
                    Error(
                        f"DATABASES[{alias!r}] goes through a transaction-mode pooler with "
                        "server-side cursors: .iterator() breaks when the cursor's "
                        "transaction moves to another server connection.",
                        hint="Set DISABLE_SERVER_SIDE_CURSORS to True.",
                        id="drf_scale.E023",
                    )
                )
            if config.get("OPTIONS", {}).get("prepare_threshold") is not None:
                messages.append(
                    Error(
                        f"DATABASES[{alias!r}] goes through a transaction-mode pooler with "
                        "prepared statements: they exist on one server connection only.",
                        hint="Set OPTIONS['prepare_threshold'] to None.",
                        id="drf_scale.E024",
                    )
                )
    return messages


ROUTER = "drf_scale.routers.ReplicaRouter"
READ_POSITION = "drf_scale.routers.ReadPositionMiddleware"


@register("drf_scale")
def check_replicas(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E026 to E029, W026: replicas (``replica_config``) that would read stale or not at all."""
    messages: list[CheckMessage] = []
    replicas = {
        alias: config[REPLICA_OF]
        for alias, config in settings.DATABASES.items()
        if config.get(REPLICA_OF)
    }
    for alias, primary in replicas.items():
        if primary not in settings.DATABASES or primary in replicas:
            messages.append(
                Error(
                    f"DATABASES[{alias!r}] is a replica of {primary!r}, which is not a "
                    "primary in DATABASES: its writes and read positions have nowhere to go.",
                    hint="Name the primary's alias in replica_config(of=...).",
                    id="drf_scale.E026",
                )
            )
    if not replicas:
        return messages
    if find_spec("psycopg") is None:
        messages.append(
            Error(
                "DATABASES has replicas but psycopg (3) is not installed: their positions "
                "cannot be sampled, so every read goes to the primary.",
                hint="pip install 'psycopg[binary]'",
                id="drf_scale.E029",
            )
        )
    routers = [r if isinstance(r, str) else f"{type(r).__module__}.{type(r).__name__}"
               for r in settings.DATABASE_ROUTERS]  # fmt: skip
    if ROUTER not in routers:
        messages.append(
            Error(
                "DATABASES has replicas but DATABASE_ROUTERS has no ReplicaRouter: Django "
                "never reads them, or a router of yours reads them inside atomic() and "
                "before a client's own writes.",
                hint=f"Add {ROUTER!r} to DATABASE_ROUTERS.",
                id="drf_scale.E027",
            )
        )
    elif routers[0] != ROUTER:
        messages.append(
            Error(
                f"DATABASE_ROUTERS has {routers[0]!r} before ReplicaRouter: it may send "
                "reads inside atomic() or after a client's write to a replica behind it.",
                hint=f"Put {ROUTER!r} first.",
                id="drf_scale.E028",
            )
        )
    if READ_POSITION not in settings.MIDDLEWARE:
        messages.append(
            Warning(
                "DATABASES has replicas but MIDDLEWARE has no ReadPositionMiddleware: "
                "every read goes to the primary.",
                hint=f"Add {READ_POSITION!r} after DatabaseUnavailableMiddleware.",
                id="drf_scale.W026",
            )
        )
    return messages


@register(Tags.database)
@_reads_settings
def check_pool_capacity(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """E025: the pools of all workers can ask for more connections than the server allows.

    Runs when databases are checked (``check --database``, ``migrate``) and the worker
    count is known (DRF_SCALE WORKERS, else $WEB_CONCURRENCY).
    """
    workers = scale_settings.WORKERS or int(os.environ.get("WEB_CONCURRENCY") or 0)
    if not workers or not databases:
        return []
    messages: list[CheckMessage] = []
    for alias in databases:
        size = pool_max_size(settings.DATABASES[alias])
        connection = connections[alias]
        if not size or connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
            )
            (available,) = cursor.fetchone()
        if workers * size > available:
            messages.append(
                Error(
                    f"DATABASES[{alias!r}]: {workers} workers x a pool of {size} = "
                    f"{workers * size} connections, over the {available} the server allows.",
                    hint="Lower the pool's max_size or the workers, or put PgBouncer in front.",
                    id="drf_scale.E025",
                )
            )
    return messages


# Keyset pagination: every ordering a client may ask for should be an index scan (W010).


def _view_classes(patterns: list[Any]) -> Iterator[type]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _view_classes(pattern.url_patterns)
        elif (view_class := getattr(pattern.callback, "cls", None)) is not None:
            yield view_class


def _routed_view_classes() -> set[type]:
    """The class-based views of the URLconf; none in a project without ROOT_URLCONF."""
    if not getattr(settings, "ROOT_URLCONF", None):
        return set()
    return set(_view_classes(get_resolver().url_patterns))


@register("drf_scale")
@_reads_settings
def check_keyset_indexes(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W010: no index yields an ordering a KeysetPagination view allows; E010: not a field.

    Checked per routed view with a ``queryset`` attribute: its default ordering and
    each of its ``ordering_fields`` alone, with the primary key appended. An index
    matches when its leading columns are the ordering's, in the same or the exactly
    opposite directions (PostgreSQL scans B-trees both ways).
    """
    messages: list[CheckMessage] = []
    views = _routed_view_classes()
    for view_class in sorted(views, key=str):
        paginator_class = getattr(view_class, "pagination_class", None)
        queryset = getattr(view_class, "queryset", None)
        if queryset is None or not (
            isinstance(paginator_class, type) and issubclass(paginator_class, KeysetPagination)
        ):
            continue
        model = queryset.model
        paginator = paginator_class()
        orderings = [paginator.get_default_ordering(view_class)]
        orderings += [(name,) for name in paginator.get_ordering_fields(model, view_class)]
        for names in orderings:
            try:
                ordering = resolve_ordering(model, names)
            except ImproperlyConfigured as exc:
                messages.append(Error(str(exc), obj=view_class, id="drf_scale.E010"))
                continue
            if ordering_index(model, ordering):
                continue
            columns = [str(term) for term in ordering]
            messages.append(
                Warning(
                    f"{view_class.__name__} pages {model._meta.label} by "
                    f"({', '.join(columns)}) and no index yields that ordering: "
                    "every page sorts all the matching rows.",
                    hint=f"Add models.Index(fields={columns!r}, name=...) to "
                    f"{model.__name__}.Meta.indexes.",
                    obj=view_class,
                    id="drf_scale.W010",
                )
            )
    return messages


# Read paths: what every request rebuilds, and what stays off the compiled plan (W030 to W032).


def _declared_serializers(serializer_class: type) -> Iterator[type]:
    """``serializer_class`` and the serializers declared in it, to any depth, without building."""
    yield serializer_class
    for declared in getattr(serializer_class, "_declared_fields", {}).values():
        nested = declared.child if isinstance(declared, ListSerializer) else declared
        if isinstance(nested, BaseSerializer):
            yield from _declared_serializers(type(nested))


def _view_serializers(view_class: type) -> set[type]:
    """The serializer classes a routed view names: for reads, writes and per action."""
    found: set[Any] = _serializer_classes(view_class)  # any attribute value, filtered below
    for name in ("serializer_class", "read_serializer_class", "write_serializer_class"):
        found.add(getattr(view_class, name, None))
    for name in ("read_serializer_classes", "write_serializer_classes"):
        found.update(getattr(view_class, name, {}).values())
    return {klass for klass in found if isinstance(klass, type)}


@register("drf_scale")
@_reads_settings
def check_read_paths(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W030: fields = "__all__"; W031: model introspection per request; W032: a plan falls back;
    W033: W031 or W032 could not learn a view's serializer class; W034: a view sets
    render_in_database but its list serializer renders in Python.

    Per routed view: W030 for each serializer it names (nested ones included) that exposes
    every model field, W031 for list and retrieve ModelSerializers of drf_scale views without
    FastReadMixin (DRF rebuilds their fields from the model for each request), W032 for
    those of FastReadMixin views that render through DRF, naming every field that does not
    compile. The serializer classes are those ``get_serializer_class()`` returns for a GET list
    and retrieve request by an anonymous user; W033 names a view for which it raises.
    """
    messages: list[CheckMessage] = []
    views = _routed_view_classes()
    exposing: dict[type, type] = {}
    for view_class in sorted(views, key=str):
        for serializer_class in _view_serializers(view_class):
            for declared in _declared_serializers(serializer_class):
                if getattr(getattr(declared, "Meta", None), "fields", None) == "__all__":
                    exposing.setdefault(declared, view_class)
        if issubclass(view_class, FastReadMixin):
            messages += _uninspected(view_class, "Check W032", "drf_scale.W033")
            messages += _fallbacks(view_class)
            messages += _rendered_in_python(view_class)
        elif issubclass(view_class, OptimizedQuerysetMixin | ReadWriteSerializerMixin):
            messages += _uninspected(view_class, "Check W031", "drf_scale.W033")
            messages += _introspected(view_class)
    for serializer_class, view_class in sorted(exposing.items(), key=str):
        messages.append(
            Warning(
                f'{serializer_class.__name__} declares fields = "__all__": every model field, '
                "including ones added later, is exposed and rendered.",
                hint="List the fields the API promises in Meta.fields.",
                obj=view_class,
                id="drf_scale.W030",
            )
        )
    return messages


def _introspected(view_class: type) -> list[CheckMessage]:
    return [
        Warning(
            f"{view_class.__name__} renders with {serializer_class.__name__}, a ModelSerializer: "
            "DRF rebuilds its fields from the model on every request.",
            hint="Add drf_scale.mixins.FastReadMixin: its compiled plan is built once per class.",
            obj=view_class,
            id="drf_scale.W031",
        )
        for serializer_class in sorted(_serializer_classes(view_class), key=str)
        if issubclass(serializer_class, ModelSerializer)
    ]


def _fallbacks(view_class: type) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for serializer_class in sorted(_serializer_classes(view_class), key=str):
        plan = compile_read_plan(serializer_class)
        if plan.fallback_reasons:
            messages.append(
                Warning(
                    f"{view_class.__name__}: {plan.describe()}: "
                    f"{'; '.join(plan.fallback_reasons)}.",
                    hint="Give method fields a @drf_scale.fast.batch hint, read columns, "
                    "relations or declared annotations.",
                    obj=view_class,
                    id="drf_scale.W032",
                )
            )
    return messages


def _rendered_in_python(view_class: Any) -> list[CheckMessage]:
    """W034: a view asks for ``render_in_database`` but its list serializer cannot have it."""
    if not view_class.render_in_database:
        return []
    try:
        serializer_class = _view_for(view_class, "list").get_serializer_class()
    except Exception:  # W033 names it
        return []
    plan = compile_database_plan(serializer_class)
    if plan.compiled:
        return []
    return [
        Warning(
            f"{view_class.__name__} sets render_in_database, but {plan.describe()}.",
            hint="Render those fields from columns, relations or declared annotations, or give "
            "a field class of your own a json_sql() method (drf_scale.sqljson).",
            obj=view_class,
            id="drf_scale.W034",
        )
    ]


# The representation cache: no representation shared across users or across stale processes.


def _method_fields(serializer: Any, where: str) -> Iterator[str]:
    """Paths of the method fields of a serializer tree: code that may read request.user."""
    for name, field in serializer.fields.items():
        child = getattr(field, "child", field)
        if isinstance(child, SerializerMethodField):
            yield f"{where}.{name}"
        elif isinstance(child, BaseSerializer) and hasattr(child, "fields"):
            yield from _method_fields(child, f"{where}.{name}")


@register("drf_scale")
@_reads_settings
def check_representation_cache(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W040: a public cached view renders method fields; E040: memory store, many workers;
    W041: a cached view whose embedded rows cannot all be traced back is not cached."""
    from drf_scale.cache.invalidation import registry
    from drf_scale.cache.views import CachedViewMixin

    messages: list[CheckMessage] = []
    workers = scale_settings.WORKERS or int(os.environ.get("WEB_CONCURRENCY") or 0)
    if not scale_settings.CACHE_URL and workers > 1:
        messages.append(
            Error(
                f"The representation cache is in process memory, but {workers} worker processes "
                "serve: a write in one would leave the others' copies stale.",
                hint="Set DRF_SCALE CACHE_URL to a redis:// URL, or run one worker process.",
                id="drf_scale.E040",
            )
        )
    for view_class in _routed_view_classes():
        if not issubclass(view_class, CachedViewMixin) or view_class.cache_scope is None:
            continue
        for action in sorted(view_class.caches):
            serializer_class = view_class.cached_serializer_class(action)
            if serializer_class is not None and serializer_class in registry.untracked:
                messages.append(
                    Warning(
                        f"{view_class.__name__}'s {action} representations are not cached: "
                        f"{serializer_class.__name__} embeds "
                        f"{registry.untracked[serializer_class]}; a write to the row it "
                        "points to could not be traced back to invalidate them.",
                        hint="Serialize the generic foreign key's target as its type and id "
                        "only, or leave the view uncached; silence drf_scale.W041 to accept.",
                        obj=view_class,
                        id="drf_scale.W041",
                    )
                )
        if view_class.cache_scope != "public":
            continue
        for action in ("list", "retrieve"):
            serializer_class = view_class.cached_serializer_class(action)
            if serializer_class is None:
                continue
            for path in _method_fields(serializer_class(), serializer_class.__name__):
                messages.append(
                    Warning(
                        f"{view_class.__name__} shares its {action} representations between "
                        f"users (cache_scope='public') but {path} is a method field, which "
                        "may depend on the request.",
                        hint="Use cache_scope = 'user' if it does; else silence drf_scale.W040.",
                        obj=view_class,
                        id="drf_scale.W040",
                    )
                )
    return messages


def _deleted_by_the_database(model: type[Model]) -> list[Any]:
    """Foreign keys of ``model`` whose on_delete the database runs (Django 6.1's DB_CASCADE,
    DB_SET_NULL, DB_SET_DEFAULT): it changes or deletes ``model``'s rows without signals."""
    return [
        field
        for field in model._meta.concrete_fields
        if field.many_to_one
        and field.remote_field is not None  # always, on a foreign key
        and isinstance(field.remote_field.on_delete, _DATABASE_ON_DELETE)
    ]


@register("drf_scale")
@_reads_settings
def check_database_on_delete(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E041: cached representations embed rows the database deletes or changes without signals."""
    from drf_scale.cache.invalidation import Dependency, registry

    _routed_view_classes()  # cached views register what they embed when imported
    messages: list[CheckMessage] = []
    for model, dependencies in sorted(registry.by_model.items(), key=lambda item: str(item[0])):
        for field in _deleted_by_the_database(model):
            # Covered where the deleted row is embedded too: its own delete finds the roots.
            target = registry.dependencies(field.related_model)
            roots = sorted(
                {
                    d.root.__name__
                    for d in dependencies
                    if Dependency(d.root, "__".join(filter(None, [d.path, field.name])))
                    not in target
                }
            )
            if not roots:
                continue
            messages.append(
                Error(
                    f"{model.__name__}.{field.name} has on_delete={field.remote_field.on_delete}: "
                    f"the database changes {model.__name__} rows without signals, and cached "
                    f"representations of {', '.join(roots)} embed them, which would go stale.",
                    hint="Use a Python-side on_delete (CASCADE, SET_NULL) on cached models.",
                    obj=field,
                    id="drf_scale.E041",
                )
            )
    return messages


# Optional backends: a setting or module that needs an extra which is not installed (E050/E051).


def _extra_missing(module: str, extra: str, users: list[str], check_id: str) -> list[CheckMessage]:
    if not users or find_spec(module) is not None:
        return []
    return [
        Error(
            f"{', '.join(users)} need{'s' if len(users) == 1 else ''} {module!r}, "
            "which is not installed.",
            hint=f'pip install "drf-scale[{extra}]"',
            id=check_id,
        )
    ]


def _declares_aggregates(module: str) -> bool:
    """Whether ``module`` exists and uses drf_scale.aggregates (read, not imported: without
    Celery it would not import). Other ``aggregates`` modules, Django's own among them
    (django.contrib.postgres.aggregates), are not ours."""
    if module.startswith("drf_scale."):
        return False
    try:
        spec = find_spec(module)
    except ImportError:
        return False
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return False
    with open(spec.origin, encoding="utf-8", errors="replace") as source:
        return "drf_scale.aggregates" in source.read()


@register("drf_scale")
@_reads_settings
def check_edge(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E030: an EDGE_PURGER that cannot be built; W027: purges of keys no response names;
    W028: keys named that nothing purges."""
    from drf_scale.edge import get_purger

    if scale_settings.EDGE_PURGER is None:
        if scale_settings.EDGE_KEY_HEADER is None:
            return []
        return [
            Warning(
                "DRF_SCALE['EDGE_KEY_HEADER'] is set but EDGE_PURGER is None: responses name "
                "surrogate keys that no write purges, so the edge serves what a write changed "
                "until its s-maxage ends.",
                hint="Set EDGE_PURGER, or purge from your own code (drf_scale.edge.purge).",
                id="drf_scale.W028",
            )
        ]
    try:
        get_purger()
    except Exception as error:
        return [
            Error(
                f"DRF_SCALE['EDGE_PURGER'] cannot be built: {error}. Writes would leave the "
                "edge serving what they changed until its TTL.",
                hint="Name a drf_scale.edge.Purger subclass; EDGE_PURGER_OPTIONS are the "
                "keyword arguments of its constructor.",
                id="drf_scale.E030",
            )
        ]
    if scale_settings.EDGE_KEY_HEADER is None:
        return [
            Warning(
                "DRF_SCALE['EDGE_PURGER'] is set but EDGE_KEY_HEADER is None: responses name "
                "no surrogate keys, so purges remove nothing at the edge.",
                hint='Set EDGE_KEY_HEADER to "Surrogate-Key", "xkey" or "Cache-Tag".',
                id="drf_scale.W027",
            )
        ]
    return []


_TIMEOUTS = ("socket_timeout", "socket_connect_timeout")


@register("drf_scale")
@_reads_settings
def check_cache_timeouts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W050: a Redis cache drf_scale uses (COUNT_CACHE, AGGREGATE_CACHE) without timeouts."""
    messages: list[CheckMessage] = []
    caches_ = getattr(settings, "CACHES", {})
    for alias in sorted({scale_settings.COUNT_CACHE, scale_settings.AGGREGATE_CACHE}):
        config = caches_.get(alias, {})
        missing = [name for name in _TIMEOUTS if name not in config.get("OPTIONS", {})]
        if "redis" in config.get("BACKEND", "").lower() and missing:
            messages.append(
                Warning(
                    f"CACHES[{alias!r}] is a Redis without {' and '.join(missing)}: a Redis "
                    "that hangs would hang the requests that count or read aggregates, and "
                    "writes (their after-commit refreshes), for redis-py's default 5 s or more.",
                    hint="Set OPTIONS socket_timeout and socket_connect_timeout (e.g. 0.25).",
                    id="drf_scale.W050",
                )
            )
    return messages


@register("drf_scale")
@_reads_settings
def check_extras(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E050: a Redis cache without the redis extra; E051: aggregates without the celery extra."""
    redis_users = ["DRF_SCALE CACHE_URL"] if scale_settings.CACHE_URL else []
    redis_users += [
        f"CACHES[{alias!r}]"
        for alias, config in getattr(settings, "CACHES", {}).items()
        if "redis" in config.get("BACKEND", "").lower()
    ]
    celery_users = [
        module
        for config in apps.get_app_configs()
        if _declares_aggregates(module := f"{config.name}.aggregates")
    ]
    return [
        *_extra_missing("redis", "redis", redis_users, "drf_scale.E050"),
        *_extra_missing("celery", "celery", celery_users, "drf_scale.E051"),
    ]


# DRF's methods the drf_scale mixins extend, and the hook each DRF handler calls.
EXTENDED_HOOKS = (
    "dispatch", "initial", "get_queryset", "get_object", "get_serializer",
    "get_serializer_class", "paginate_queryset", "perform_create", "perform_update",
    "perform_destroy", "handle_exception", "finalize_response",
)  # fmt: skip
HANDLER_HOOKS = {
    "list": "paginate_queryset", "retrieve": "get_object", "create": "perform_create",
    "update": "perform_update", "destroy": "perform_destroy",
}  # fmt: skip


def _ours(klass: type) -> bool:
    return klass.__module__.startswith("drf_scale.")


def _calls(function: Any, *names: str) -> bool:
    """Whether the source of ``function`` calls one of ``names`` (unknown source: assume so)."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return True
    return any(f"{name}(" in source for name in names)


def _composition(view_class: type) -> Iterator[CheckMessage]:
    if issubclass(view_class, APIView) and not issubclass(view_class, GenericAPIView):
        yield Error(
            f"{view_class.__name__} is no generic view: the drf_scale mixins extend the hooks "
            "of DRF's GenericAPIView (get_queryset, get_serializer_class, paginate_queryset), "
            f"which {view_class.__name__} does not have.",
            hint="Base it on a generic view or viewset (GenericViewSet, ModelViewSet...), or "
            "drop the mixins.",
            obj=view_class,
            id="drf_scale.E073",
        )
        return
    mro = view_class.__mro__
    ours = [klass for klass in mro if _ours(klass)]
    for position, klass in enumerate(mro):
        if _ours(klass):
            continue
        later = [mixin for mixin in ours if mro.index(mixin) > position]
        for name in EXTENDED_HOOKS:
            function = vars(klass).get(name)
            extended = [m.__name__ for m in later if name in vars(m)]
            if function is None or not extended:
                continue
            if klass.__module__.startswith(("rest_framework.", "django.")):
                yield Error(
                    f"{view_class.__name__}: {klass.__name__} comes before "
                    f"{', '.join(extended)} in the MRO, so its {name}() replaces theirs.",
                    hint="List the drf_scale mixins before DRF's generic views and viewsets.",
                    obj=view_class,
                    id="drf_scale.E070",
                )
            elif not _calls(function, "super"):
                yield Error(
                    f"{view_class.__name__}: {klass.__name__}.{name}() does not call super(), "
                    f"so the {name}() of {', '.join(extended)} never runs.",
                    hint="Call super() in the override, or drop the mixin.",
                    obj=view_class,
                    id="drf_scale.E071",
                )
        for handler, hook in HANDLER_HOOKS.items():
            function = vars(klass).get(handler)
            extended = [m.__name__ for m in ours if hook in vars(m)]
            if function is None or not extended or _calls(function, "super", hook):
                continue
            yield Error(
                f"{view_class.__name__}: {klass.__name__}.{handler}() calls neither super() nor "
                f"{hook}(), so what {', '.join(extended)} do there never runs.",
                hint=f"Let {handler}() call {hook}() as DRF's does, or drop the override.",
                obj=view_class,
                id="drf_scale.E072",
            )


@register("drf_scale")
def check_view_composition(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E070-E072: a stack of drf_scale mixins where DRF or an override hides one of them;
    W070: a cached list without the compiled plan it renders misses through."""
    messages: list[CheckMessage] = []
    for view_class in sorted(set(_subclasses(ReadPathMixin)), key=str):
        messages += _composition(view_class)
        if issubclass(view_class, CachedListMixin) and not issubclass(view_class, FastReadMixin):
            messages.append(
                Warning(
                    f"{view_class.__name__} has CachedListMixin without FastReadMixin: its lists "
                    "are never cached (their misses render through the compiled read plan).",
                    hint="Add drf_scale.mixins.FastReadMixin, or use ScaleModelViewSet.",
                    obj=view_class,
                    id="drf_scale.W070",
                )
            )
    return messages


def _composite_key_parts(view_class: type) -> list[str]:
    """What of drf_scale the view uses that keys rows by a single-column primary key."""
    parts = []
    if issubclass(view_class, CachedViewMixin) and view_class.cache_scope is not None:
        parts.append("the representation cache")
    if issubclass(view_class, FastReadMixin) and view_class.fast_reads is not False:
        parts.append("compiled reads")
    paginator_class = getattr(view_class, "pagination_class", None)
    if isinstance(paginator_class, type) and issubclass(paginator_class, KeysetPagination):
        parts.append("keyset pagination")
    return parts


@register("drf_scale")
def check_composite_primary_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E080: a view serves a model with a composite primary key (Django 5.2's
    CompositePrimaryKey) through a capability that keys rows by a single column."""
    messages: list[CheckMessage] = []
    views = set(_subclasses(ReadPathMixin)) | _routed_view_classes()
    for view_class in sorted(views, key=str):
        queryset = getattr(view_class, "queryset", None)
        model = getattr(queryset, "model", None)
        if model is None or not getattr(model._meta, "is_composite_pk", False):
            continue
        parts = _composite_key_parts(view_class)
        if parts:
            messages.append(
                Error(
                    f"{view_class.__name__} serves {model.__name__}, whose primary key is "
                    f"composite: {', '.join(parts)} of drf_scale key rows by a single-column "
                    "primary key and do not support it.",
                    hint="Serve it with DRF's own classes (cache_scope = None, fast_reads = "
                    "False, a DRF paginator), or give the model a single-column primary key "
                    "and a UniqueConstraint on the pair.",
                    obj=view_class,
                    id="drf_scale.E080",
                )
            )
    return messages
