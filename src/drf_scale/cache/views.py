"""CachedRetrieveMixin and CachedListMixin: representations from the cache, ETags, 304s.

class ProductViewSet(CachedRetrieveMixin, CachedListMixin, FastReadMixin, ..., ModelViewSet):
    cache_scope = "public"            # the same representation for every user
    cache_depends_on = ("reviews",)   # relations annotations read, which the plan cannot see

Detail: one round trip to the cache; a hit answers without the database (a 304 too). A miss
renders as the view would and stores the JSON under the lease it took. Lists: the page's
primary keys come from the database (membership and order are always fresh), their
representations from one multi-get, the misses from the compiled read plan in one go, stored
back in one round trip. ``X-Cache`` says hit, miss or bypass (for lists: hits/rows).

Scopes: "public" shares a representation between all users; "user" (the default) keys it by
the requesting user; None does not cache. A view whose permissions check objects runs them
on every detail request, on the object loaded with only the fields they declare, before a
hit is served (``ReadPathMixin.check_object_access``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from rest_framework.serializers import BaseSerializer
from rest_framework.settings import api_settings

from drf_scale.cache.invalidation import registry, surrogate_keys
from drf_scale.cache.store import Entry, Items, Lease, Lookup, Unavailable, get_store
from drf_scale.conditional import ConditionalRetrieveModelMixin
from drf_scale.conf import scale_settings
from drf_scale.edge import keys_enabled, list_key, model_key
from drf_scale.http import not_modified, set_cache_headers, strong_etag, weak_etag
from drf_scale.mixins import EarlyResponse, ListRows, Rendered, checks_objects
from drf_scale.renderers import ORJSONRenderer
from drf_scale.routers import reads_current

__all__ = ["CachedListMixin", "CachedRetrieveMixin"]

SCOPES = ("public", "user", None)


@scale_settings.derived  # CACHE_VERSION is part of it
@functools.cache
def namespace(serializer_class: type[BaseSerializer]) -> str:
    """The serializer's identity and declaration: changing its fields changes its keys."""
    name = f"{serializer_class.__module__}.{serializer_class.__qualname__}"
    edge = "edge" if keys_enabled() else ""  # entries with surrogate keys, or without
    declaration = f"{name}|{_declaration(serializer_class())}|{scale_settings.CACHE_VERSION}{edge}"
    return hashlib.blake2b(declaration.encode(), digest_size=6).hexdigest()


def _declaration(serializer: BaseSerializer) -> str:
    """Each field's name, class and source, nested serializers included."""
    parts = []
    for name, field in serializer.fields.items():  # type: ignore[attr-defined]
        child = getattr(field, "child", field)
        inner = _declaration(child) if hasattr(child, "fields") else ""
        parts.append(f"{name}:{type(field).__qualname__}:{field.source}({inner})")
    return ",".join(parts)


def entry_for(data: Any) -> Entry:
    """The stored form of a representation: its compact JSON and that JSON's strong ETag."""
    body = ORJSONRenderer().render(data)
    return Entry(strong_etag(body), body)


class RepresentationCache:
    """The cached representations of one serializer's model, in one scope."""

    def __init__(self, serializer_class: type[BaseSerializer], scope: str) -> None:
        self.model = serializer_class.Meta.model  # type: ignore[attr-defined]
        self.label = self.model._meta.label_lower
        self.edge_keys = scope == "public" and keys_enabled()
        # mypy#11470: classes are Hashable, as functools.cache requires
        self.field = f"{namespace(serializer_class)}:{scope}"  # type: ignore[arg-type]
        self.store = get_store()

    def lookup(self, pks: Sequence[Any]) -> list[Lookup]:
        """Entries or leases; None where another request kept the lease past the wait, or the
        store is unavailable (read the database, store nothing)."""
        found: list[Lookup] = [None] * len(pks)
        waiting = list(range(len(pks)))
        deadline = time.monotonic() + scale_settings.CACHE_LEASE_WAIT
        lease_ms = scale_settings.CACHE_LEASE_MS
        while waiting:
            try:
                keys = [pks[i] for i in waiting]
                results = self.store.read(self.label, keys, self.field, lease_ms)
            except Unavailable:
                break
            for i, result in zip(waiting, results, strict=True):
                found[i] = result
            waiting = [i for i in waiting if found[i] is None]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        leased = [i for i, result in enumerate(found) if isinstance(result, Lease)]
        if leased and not reads_current():  # a replica behind: its rows may predate a write
            self.save([(pks[i], cast(Lease, found[i]), None) for i in leased])
            for i in leased:
                found[i] = None
        return found

    def save(self, items: Items) -> int:
        """Store entries (None releases the lease) where the lease still holds: how many."""
        if items:
            with contextlib.suppress(Unavailable):
                return self.store.write(self.label, self.field, items)
        return 0

    def fill(self, pk: Any, found: Lookup, data: Any) -> Entry | None:
        """The entry of ``data`` rendered on a miss (None: nothing, e.g. a 404), stored under
        the lease ``found``. Unless it was stored (an invalidation meanwhile revoked the lease,
        or there was none), it may predate a write: it keeps no surrogate keys, so the edge
        does not keep it."""
        if data is None:
            if isinstance(found, Lease):
                self.save([(pk, found, None)])  # releases the lease
            return None
        entry = self.keyed({pk: entry_for(data)})[pk]
        if isinstance(found, Lease) and self.save([(pk, found, entry)]):
            return entry
        return dataclasses.replace(entry, keys=None)

    def version(self) -> str | None:
        try:
            return self.store.version(self.label)
        except Unavailable:
            return None

    def fetch(self, pk: Any, build: Callable[[], Any]) -> tuple[Entry | None, str]:
        """The entry of ``pk`` and "hit" or "miss": on a miss ``build()`` renders it (None:
        nothing to store, e.g. a 404) and it is stored under the lease the miss took."""
        [found] = self.lookup([pk])
        if isinstance(found, Entry):
            return found, "hit"
        try:
            data = build()
        except BaseException:
            self.fill(pk, found, None)  # releases the lease
            raise
        return self.fill(pk, found, data), "miss"

    def entries(
        self, pks: Sequence[Any], render: Callable[[list[Any]], Mapping[Any, Any]]
    ) -> tuple[dict[Any, Entry], int]:
        """The entries of ``pks`` and how many were hits: one multi-get, then ``render`` of
        the misses (their representations by pk) in one go, stored back in one round trip."""
        found = self.lookup(pks)
        entries = {pk: f for pk, f in zip(pks, found, strict=True) if isinstance(f, Entry)}
        hits = len(entries)
        missing = [pk for pk in pks if pk not in entries]
        if missing:
            entries.update(
                self.keyed({pk: entry_for(data) for pk, data in render(missing).items()})
            )
        leases = [(pk, f) for pk, f in zip(pks, found, strict=True) if isinstance(f, Lease)]
        self.save([(pk, lease, entries.get(pk)) for pk, lease in leases])
        return entries, hits

    def keyed(self, entries: dict[Any, Entry]) -> dict[Any, Entry]:
        """New entries with their surrogate keys, when public responses name them."""
        if not self.edge_keys or not entries:
            return entries
        keys = surrogate_keys(self.model, list(entries))
        return {pk: dataclasses.replace(entry, keys=keys.get(pk)) for pk, entry in entries.items()}

    def peek(self, pks: Sequence[Any]) -> list[Entry | None]:
        """The entries of ``pks`` that are cached; no lease is taken (it expires at once)."""
        try:
            found = self.store.read(self.label, pks, self.field, lease_ms=0)
        except Unavailable:
            return [None] * len(pks)
        return [entry if isinstance(entry, Entry) else None for entry in found]

    async def apeek(self, pks: Sequence[Any]) -> list[Entry | None]:
        """The entries of ``pks`` that are cached, without leaving the event loop."""
        try:
            return await self.store.apeek(self.label, pks, self.field)
        except Unavailable:
            return [None] * len(pks)


def _accepts_only_json(accept: str) -> bool:
    """Whether content negotiation would pick JSON whatever the renderers (no text/html)."""
    ranges = (part.split(";")[0].strip() for part in accept.split(",") if part.strip())
    return all(media in ("*/*", "application/*", "application/json") for media in ranges)


class CachedViewMixin(ConditionalRetrieveModelMixin):
    """What both cached mixins share: scope, registration of dependencies, responses."""

    cache_scope: str | None = "user"
    cache_depends_on: Sequence[str] = ()
    cached_actions: Sequence[str] = ()
    caches: frozenset[str] = frozenset()  # the cached_actions of every class of the view
    _cached: tuple[RepresentationCache, Any, Lookup] | None = None
    _cache_state: tuple[str | None, str] | None = None  # (ETag, X-Cache) of the response
    edge_keys: Sequence[str] | None = None  # the surrogate keys of the response

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.cache_scope not in SCOPES:
            raise ValueError(f"{cls.__name__}.cache_scope must be one of {SCOPES}")
        actions = {a for klass in cls.__mro__ for a in vars(klass).get("cached_actions", ())}
        cls.caches = frozenset(actions)
        if cls.cache_scope is None:
            return
        for action in sorted(actions):
            serializer_class = cls.cached_serializer_class(action)
            if serializer_class is not None and hasattr(serializer_class, "Meta"):
                registry.register(serializer_class, cls.cache_depends_on)

    @classmethod
    def cached_serializer_class(cls, action: str) -> type[BaseSerializer] | None:
        classes = getattr(cls, "read_serializer_classes", {})
        return (
            classes.get(action)
            or getattr(cls, "read_serializer_class", None)
            or getattr(cls, "serializer_class", None)
        )

    def scope(self) -> str | None:
        """The cache scope of this request; None: not cached."""
        if self.cache_scope == "public":
            return "public"
        if self.cache_scope == "user":
            user = self.request.user
            return f"user:{user.pk}" if user.is_authenticated else "anonymous"
        return None

    def cache_public(self) -> bool:
        return self.cache_scope == "public"

    def get_representation_cache(self) -> RepresentationCache | None:
        """The cache of this action, if it is one of ``cached_actions`` and may be cached."""
        if self.action not in self.caches:
            return None
        scope, serializer_class = self.scope(), self.get_serializer_class()
        if scope is None or not scale_settings.CACHE_ENABLED:
            return None
        if not registry.tracks(serializer_class):  # drf_scale.W041
            return None
        return RepresentationCache(serializer_class, scope)

    def body_data(self, body: bytes) -> Any:
        """What a Response carries for stored JSON: the bytes as they are, when they fit."""
        return self.json_data([body])[0]

    def entry_response(self, response: Any, entry: Entry, state: str) -> HttpResponseBase:
        """DRF's response carrying the stored JSON (304 when If-None-Match names it): the
        bytes themselves when they are what the renderer would write, else rendered."""
        compact = self.compact_json()
        etag = entry.etag if compact else self.representation_etag(response)
        self.edge_keys = entry.keys
        unchanged = None if etag is None else self.not_modified(etag, state)
        if unchanged is not None:
            return unchanged
        if compact:
            response.content = entry.body  # rendered: the renderer does not run again
            response["Content-Type"] = self.request.accepted_renderer.media_type
        return self.cache_headers(response, etag, state)

    def cache_headers(
        self, response: HttpResponseBase, etag: str | None, state: str
    ) -> HttpResponseBase:
        set_cache_headers(response, public=self.cache_public(), etag=etag, keys=self.edge_keys)
        response["X-Cache"] = state
        return response

    def not_modified(self, etag: str, state: str) -> HttpResponseBase | None:
        response = not_modified(self.request, etag, public=self.cache_public())
        return None if response is None else self.cache_headers(response, etag, state)

    def finalize_read(self, response: Any) -> Any:
        cached, self._cached = self._cached, None
        if cached is not None:  # a retrieve the cache served or will store
            cache, pk, found = cached
            if isinstance(found, Entry):
                return self.entry_response(response, found, "hit")
            entry = cache.fill(pk, found, response.data if response.status_code == 200 else None)
            return response if entry is None else self.entry_response(response, entry, "miss")
        if self._cache_state is not None:  # a list the cache served
            etag, state = self._cache_state
            return self.cache_headers(response, etag, state)
        response = super().finalize_read(response)
        if self.action == "retrieve" and "retrieve" in self.caches and self.cache_scope:
            response["X-Cache"] = "bypass"
        return response


class CachedRetrieveMixin(CachedViewMixin):
    """Detail from the representation cache, with a strong ETag and 304s.

    ``cache_hits_before_drf = True`` (public scope only) answers hits from ``dispatch``,
    before DRF's authentication, permissions, throttles and content negotiation: for views
    that every client may read, without throttles, to clients that accept JSON. Anything
    else (a miss, query parameters, an Accept other than JSON, a request with credentials)
    takes the DRF path, so a bad credential is a 401 whether or not the object is cached.
    """

    cached_actions = ("retrieve",)
    cache_hits_before_drf: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.cache_hits_before_drf and cls.cache_scope != "public":
            raise ValueError(f"{cls.__name__}: cache_hits_before_drf needs cache_scope 'public'")

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        early = self.early_hit(request, kwargs) if self.cache_hits_before_drf else None
        return early if early is not None else super().dispatch(request, *args, **kwargs)

    def early_hit(self, request: HttpRequest, kwargs: dict[str, Any]) -> HttpResponseBase | None:
        """The cached representation, if this bare JSON GET or HEAD of a detail has one."""
        assert request.method is not None  # set on every request a handler dispatches
        action = getattr(self, "action_map", {}).get(request.method.lower())
        if (
            action != "retrieve"
            or request.GET
            or not scale_settings.CACHE_ENABLED
            or not _accepts_only_json(request.headers.get("Accept", ""))
            or "Authorization" in request.headers  # credentials are DRF's to judge
            or checks_objects(self)  # so are objects
        ):
            return None
        self.kwargs = kwargs
        pk, serializer_class = self.cached_pk(), self.cached_serializer_class("retrieve")
        if pk is None or serializer_class is None or not registry.tracks(serializer_class):
            return None
        [entry] = RepresentationCache(serializer_class, "public").peek([pk])
        if entry is None:
            return None
        response = not_modified(request, entry.etag, public=True) or HttpResponse(
            entry.body, content_type="application/json"
        )
        set_cache_headers(response, public=True, etag=entry.etag, keys=entry.keys)
        response["X-Cache"] = "hit"
        return response

    def cached_pk(self) -> Any:
        """The primary key the URL names, normalized; None when the lookup is not the pk."""
        # django-stubs give managers a __get__ (they have none): it would apply to self here.
        queryset = self.queryset if self.queryset is not None else self.get_queryset()  # type: ignore[arg-type]
        pk_field = queryset.model._meta.pk
        if self.lookup_field not in ("pk", pk_field.name, pk_field.attname):
            return None
        try:
            return pk_field.to_python(self.kwargs[self.lookup_url_kwarg or self.lookup_field])
        except ValidationError:
            return None

    def cached_object(self) -> Rendered | None:
        cache = self.get_representation_cache()
        # Query parameters may filter the object out (404): only a bare URL is served cached.
        bare = not set(self.request.query_params) - {api_settings.URL_FORMAT_OVERRIDE}
        pk = self.cached_pk() if cache is not None and bare else None
        if cache is None or pk is None:
            return super().cached_object()
        self.check_object_access()  # a hit is served only past the object permissions
        [found] = cache.lookup([pk])
        self._cached = (cache, pk, found)
        return Rendered(self.body_data(found.body)) if isinstance(found, Entry) else None


class CachedListMixin(CachedViewMixin):
    """Lists whose rows come from the representation cache, through the compiled read plan
    (``FastReadMixin``): a list that does not compile is not cached.

    The weak ETag of a list is the version of its model's collection (bumped by every
    invalidation of one of its objects) with the request's URL and scope.
    """

    cached_actions = ("list",)

    def cached_list_rows(self, queryset: QuerySet) -> ListRows | None:
        cache, plan = self.get_representation_cache(), self.get_read_plan()
        if cache is None or plan is None or not plan.serves(queryset):
            return super().cached_list_rows(queryset)
        # A bad filter, cursor, page size or ordering is a 400 before any 304: both built
        # lazily, no query runs for them; the paginator keeps the page query it built.
        keys = queryset.values(*self.get_row_columns(queryset.model))
        validate = getattr(self.paginator, "get_page_queryset", None)
        if validate is not None:
            validate(keys, self.request, self)
        version = cache.version()
        # A replica behind a write the version counts would pair that version with old rows:
        # such a page has no ETag, and the edge does not keep it.
        compact = self.compact_json()  # other renderings: no list ETag
        current = version is not None and (cache.edge_keys or compact) and reads_current()
        if cache.edge_keys and current:
            self.edge_keys = (list_key(cache.model), model_key(cache.model))
        etag = None
        if current and compact:
            etag = weak_etag(str(version), self.request.get_full_path(), cache.field)
            response = self.not_modified(etag, "hit")
            if response is not None:
                raise EarlyResponse(response)
        pk_name = queryset.model._meta.pk.attname
        renders = self.get_database_plan(queryset) or plan  # both render by pk
        render_misses = functools.partial(
            renders.render_by_pk, queryset, context=self.read_context()
        )

        def render(page: list[Any]) -> list[Any]:
            pks = [row[pk_name] for row in page]
            entries, hits = cache.entries(pks, render_misses)
            self._cache_state = (etag, f"{hits}/{len(pks)} hit")
            if self.edge_keys and cache.version() != version:
                self.edge_keys = None  # a write meanwhile: the edge must not keep this page
            return [self.body_data(entries[pk].body) for pk in pks if pk in entries]

        return keys, render
