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
the requesting user; None does not cache. A view whose permissions check objects is never
cached: each request must run the check.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.settings import api_settings

from drf_scale.cache.invalidation import registry
from drf_scale.cache.store import Entry, Items, Lease, Lookup, Unavailable, get_store
from drf_scale.conf import scale_settings
from drf_scale.fast import ReadPlan
from drf_scale.http import not_modified, set_cache_headers, strong_etag, weak_etag
from drf_scale.mixins import checks_objects
from drf_scale.renderers import ORJSONRenderer

if TYPE_CHECKING:
    from rest_framework.viewsets import ModelViewSet as _View
else:
    _View = object

__all__ = ["CachedListMixin", "CachedRetrieveMixin"]

SCOPES = ("public", "user", None)


@scale_settings.derived  # CACHE_VERSION is part of it
@functools.cache
def namespace(serializer_class: type[BaseSerializer]) -> str:
    """The serializer's identity and declaration: changing its fields changes its keys."""
    name = f"{serializer_class.__module__}.{serializer_class.__qualname__}"
    declaration = f"{name}|{_declaration(serializer_class())}|{scale_settings.CACHE_VERSION}"
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
        self.label = serializer_class.Meta.model._meta.label_lower  # type: ignore[attr-defined]
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
        return found

    def save(self, items: Items) -> None:
        """Store entries (None releases the lease) where the lease still holds."""
        if items:
            with contextlib.suppress(Unavailable):
                self.store.write(self.label, self.field, items)

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
            if isinstance(found, Lease):
                self.save([(pk, found, None)])
            raise
        entry = None if data is None else entry_for(data)
        if isinstance(found, Lease):
            self.save([(pk, found, entry)])
        return entry, "miss"

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
            entries.update((pk, entry_for(data)) for pk, data in render(missing).items())
        leases = [(pk, f) for pk, f in zip(pks, found, strict=True) if isinstance(f, Lease)]
        self.save([(pk, lease, entries.get(pk)) for pk, lease in leases])
        return entries, hits

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


def render_by_pk(plan: ReadPlan, queryset: Any, pks: list[Any], context: Any) -> dict[Any, Any]:
    """The representations of rows ``pks`` of ``queryset`` through a compiled plan, by pk."""
    pk_name = queryset.model._meta.pk.attname
    rows = list(plan.rows(queryset.filter(pk__in=pks), (pk_name,)))
    rendered = plan.render(rows, context, queryset.db)
    return {row[pk_name]: data for row, data in zip(rows, rendered, strict=True)}


class CachedViewMixin(_View):
    """What both cached mixins share: scope, registration of dependencies, responses."""

    cache_scope: str | None = "user"
    cache_depends_on: Sequence[str] = ()
    cached_actions: Sequence[str] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.cache_scope not in SCOPES:
            raise ValueError(f"{cls.__name__}.cache_scope must be one of {SCOPES}")
        actions = {a for klass in cls.__mro__ for a in vars(klass).get("cached_actions", ())}
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

    def get_representation_cache(self) -> RepresentationCache | None:
        scope = self.scope()
        if scope is None or not scale_settings.CACHE_ENABLED or checks_objects(self):
            return None
        return RepresentationCache(self.get_serializer_class(), scope)

    def compact_json(self) -> bool:
        """Whether the response body is the stored JSON byte for byte (so ETags apply)."""
        renderer = getattr(self.request, "accepted_renderer", None)
        media_type = getattr(self.request, "accepted_media_type", "") or ""
        return (
            isinstance(renderer, ORJSONRenderer)
            and not renderer.ensure_ascii
            and "indent" not in media_type
        )

    def body_response(self, body: bytes) -> HttpResponse:
        """Stored JSON as the response: the bytes themselves when they are what the renderer
        would write (no DRF rendering), else the data for the negotiated renderer."""
        if self.compact_json():
            media_type = self.request.accepted_renderer.media_type
            return HttpResponse(body, content_type=media_type)
        return Response(orjson.loads(body))

    def body_data(self, body: bytes) -> Any:
        """What a Response carries for stored JSON: the bytes as they are, when they fit."""
        return orjson.Fragment(body) if self.compact_json() else orjson.loads(body)

    def cache_headers(self, response: HttpResponse, etag: str | None, state: str) -> HttpResponse:
        etag = etag if self.compact_json() else None
        set_cache_headers(response, public=self.cache_scope == "public", etag=etag)
        response["X-Cache"] = state
        return response

    def not_modified(self, etag: str, state: str) -> HttpResponse | None:
        if not self.compact_json():
            return None
        response = not_modified(self.request, etag, public=self.cache_scope == "public")
        return None if response is None else self.cache_headers(response, etag, state)


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

    def early_hit(self, request: HttpRequest, kwargs: dict[str, Any]) -> HttpResponse | None:
        """The cached representation, if this bare JSON GET or HEAD of a detail has one."""
        assert request.method is not None  # set on every request a handler dispatches
        action = getattr(self, "action_map", {}).get(request.method.lower())
        if (
            action != "retrieve"
            or request.GET
            or not scale_settings.CACHE_ENABLED
            or not _accepts_only_json(request.headers.get("Accept", ""))
            or "Authorization" in request.headers  # credentials are DRF's to judge
        ):
            return None
        self.kwargs = kwargs
        pk, serializer_class = self.cached_pk(), self.cached_serializer_class("retrieve")
        if pk is None or serializer_class is None:
            return None
        [entry] = RepresentationCache(serializer_class, "public").peek([pk])
        if entry is None:
            return None
        response = not_modified(request, entry.etag, public=True) or HttpResponse(
            entry.body, content_type="application/json"
        )
        set_cache_headers(response, public=True, etag=entry.etag)
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

    # Cached bytes and 304s are plain HttpResponses, which DRF handlers may return (the stubs
    # type DRF's own retrieve).
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        cache = self.get_representation_cache()
        # Query parameters may filter the object out (404): only a bare URL is served cached.
        bare = not set(request.query_params) - {api_settings.URL_FORMAT_OVERRIDE}
        pk = self.cached_pk() if cache is not None and bare else None
        if cache is None or pk is None:
            return self.respond(super().retrieve(request, *args, **kwargs), "bypass")
        responses: list[Response] = []

        def build() -> Any:
            response = super(CachedRetrieveMixin, self).retrieve(request, *args, **kwargs)
            responses.append(response)
            return response.data if response.status_code == 200 else None

        entry, state = cache.fetch(pk, build)
        return self.entry_response(entry, state) if entry else responses[0]

    def entry_response(self, entry: Entry, state: str) -> HttpResponse:
        response = self.not_modified(entry.etag, state) or self.body_response(entry.body)
        return self.cache_headers(response, entry.etag, state)

    def respond(self, response: Response, state: str) -> HttpResponse:
        """An uncached response: with its ETag (and a 304) all the same."""
        if response.status_code != 200:
            return response
        return self.entry_response(entry_for(response.data), state)


class CachedListMixin(CachedViewMixin):
    """Lists whose rows come from the representation cache; needs FastReadMixin.

    The weak ETag of a list is the version of its model's collection (bumped by every
    invalidation of one of its objects) with the request's URL and scope.
    """

    cached_actions = ("list",)

    # Cached bytes and 304s are plain HttpResponses, which DRF handlers may return (the stubs
    # type DRF's own list).
    def list(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        cache = self.get_representation_cache()
        if cache is None or not self.reads_compiled():  # type: ignore[attr-defined]
            return super().list(request, *args, **kwargs)
        # A bad filter, cursor, page size or ordering is a 400 before any 304: both built
        # lazily, no query runs for them; the paginator keeps the page query it built.
        queryset = self.filter_queryset(self.get_queryset())
        pk_name = queryset.model._meta.pk.attname
        keys = queryset.values(*self.get_row_columns(queryset.model))  # type: ignore[attr-defined]
        validate = getattr(self.paginator, "get_page_queryset", None)
        if validate is not None:
            validate(keys, request, self)
        version = cache.version()
        etag = None
        if version is not None:
            etag = weak_etag(version, request.get_full_path(), cache.field)
            response = self.not_modified(etag, "hit")
            if response is not None:
                return response
        page = self.paginate_queryset(keys)
        pks = [row[pk_name] for row in (keys if page is None else page)]
        context = self.get_serializer_context()
        plan = self.get_read_plan()  # type: ignore[attr-defined]
        entries, hits = cache.entries(
            pks, functools.partial(render_by_pk, plan, queryset, context=context)
        )
        data = [self.body_data(entries[pk].body) for pk in pks if pk in entries]
        response = self.get_paginated_response(data) if page is not None else Response(data)
        return self.cache_headers(response, etag, f"{hits}/{len(pks)} hit")
