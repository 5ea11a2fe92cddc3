"""Cached reads for async Django views: the representation cache without a thread per hit.

product_reads = AsyncCachedReads(ProductDetailSerializer, depends_on=("reviews",))

@require_safe
async def product_detail(request, pk):
    return await product_reads.aretrieve(request, pk)

A hit comes from the store on the event loop (the async Redis client); a miss renders through
the compiled read plan and is stored under the lease it took, in one ``sync_to_async`` call,
as ``CachedRetrieveMixin`` and ``CachedListMixin`` do it (their ``RepresentationCache``). The
representations are public, the same for every user, and shared with DRF views of the same
serializer. ``aio`` as in ``grpc.aio``: the async side of ``drf_scale.cache.views``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from rest_framework.exceptions import APIException
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.serializers import BaseSerializer
from rest_framework.views import exception_handler

from drf_scale.cache.invalidation import registry
from drf_scale.cache.store import Entry
from drf_scale.cache.views import RepresentationCache, entry_for
from drf_scale.conf import scale_settings
from drf_scale.fast import compile_read_plan
from drf_scale.http import not_modified, set_cache_headers
from drf_scale.mixins import row_columns
from drf_scale.renderers import ORJSONRenderer

__all__ = ["AsyncCachedReads"]


class AsyncCachedReads:
    """The cached detail and list pages of ``serializer_class``'s model, for async views.

    Built once, at import (it registers what the representations embed, for invalidation,
    as a cached view class does). ``queryset`` is what a detail renders from (default: the
    model's default manager); ``depends_on`` is ``cache_depends_on``.
    """

    def __init__(
        self,
        serializer_class: type[BaseSerializer],
        queryset: QuerySet[Any] | None = None,
        *,
        depends_on: Sequence[str] = (),
    ) -> None:
        model = serializer_class.Meta.model  # type: ignore[attr-defined]
        self.serializer_class = serializer_class
        self.queryset = queryset if queryset is not None else model._default_manager.all()
        registry.register(serializer_class, depends_on)

    def _cache(self) -> RepresentationCache | None:
        """The public representations; None while CACHE_ENABLED is off, or for a serializer
        whose embedded rows are not all traced back (a generic foreign key)."""
        if not scale_settings.CACHE_ENABLED or not registry.tracks(self.serializer_class):
            return None
        return RepresentationCache(self.serializer_class, "public")

    async def aretrieve(self, request: HttpRequest, pk: Any) -> HttpResponseBase:
        """The JSON of object ``pk`` with its strong ETag (a 304 on If-None-Match), X-Cache
        hit, miss or bypass; a 404 JSON when there is no such object."""
        try:
            pk = self.queryset.model._meta.pk.to_python(pk)
        except ValidationError:
            return self._not_found()
        cache = self._cache()
        [entry] = await cache.apeek([pk]) if cache is not None else [None]
        state = "hit"
        if entry is None:
            entry, state = await sync_to_async(self._fetch)(cache, request, pk)
        if entry is None:
            return self._not_found()
        response = not_modified(request, entry.etag, public=True) or HttpResponse(
            entry.body, content_type="application/json"
        )
        set_cache_headers(response, public=True, etag=entry.etag, keys=entry.keys)
        response["X-Cache"] = state
        return response

    async def alist(
        self, request: HttpRequest, queryset: QuerySet[Any], paginator: BasePagination
    ) -> HttpResponse:
        """One page of the (filtered) ``queryset``: its primary keys from the database, by
        ``apaginate_queryset`` when the paginator has one, each row's JSON from the cache;
        X-Cache "hits/rows hit". A bad page request is the JSON error DRF would answer."""
        drf_request = Request(request)
        model = queryset.model
        pk_name = model._meta.pk.attname
        keys = queryset.values(*row_columns(model, paginator))
        try:
            paginate = getattr(paginator, "apaginate_queryset", None)
            if paginate is not None:
                page = await paginate(keys, drf_request)
            else:
                page = await sync_to_async(paginator.paginate_queryset)(keys, drf_request)
        except APIException as error:
            failed = exception_handler(error, {})
            assert failed is not None  # DRF's handler answers every APIException
            return JsonResponse(failed.data, status=failed.status_code, safe=False)
        if page is None:
            raise ImproperlyConfigured(f"{type(paginator).__name__} did not paginate")
        pks = [row[pk_name] for row in page]
        entries, hits = await self._aentries(queryset, pks, {"request": drf_request})
        results = [orjson.Fragment(entries[pk].body) for pk in pks if pk in entries]
        body = ORJSONRenderer().render(paginator.get_paginated_response(results).data)
        response = HttpResponse(body, content_type="application/json")
        response["X-Cache"] = f"{hits}/{len(pks)} hit"
        return response

    def _not_found(self) -> JsonResponse:
        name = self.queryset.model._meta.object_name
        return JsonResponse({"detail": f"No {name} matches the given query."}, status=404)

    def _render(self, request: HttpRequest, pk: Any) -> Any:
        """The representation of object ``pk`` (None if there is none), from the database."""
        plan = compile_read_plan(self.serializer_class)  # type: ignore[arg-type]  # mypy#11470
        context = {"request": Request(request)}
        rows = plan.execute(self.queryset.filter(pk=pk), context)
        return rows[0] if rows else None

    def _fetch(
        self, cache: RepresentationCache | None, request: HttpRequest, pk: Any
    ) -> tuple[Entry | None, str]:
        """A detail's miss, sync: rendered and stored under the lease it takes."""
        build = functools.partial(self._render, request, pk)
        if cache is None:
            data = build()
            return (None if data is None else entry_for(data)), "bypass"
        return cache.fetch(pk, build)

    async def _aentries(
        self, queryset: QuerySet[Any], pks: list[Any], context: dict[str, Any]
    ) -> tuple[dict[Any, Entry], int]:
        """The entries of ``pks`` and how many were hits: a multi-get on the event loop, the
        misses rendered and stored in one sync_to_async call."""
        plan = compile_read_plan(self.serializer_class)  # type: ignore[arg-type]  # mypy#11470
        if not plan.compiled:
            raise ImproperlyConfigured(
                f"alist needs a compiled read plan: {'; '.join(plan.fallback_reasons)}"
            )
        render = functools.partial(plan.render_by_pk, queryset, context=context)
        cache = self._cache()
        if cache is None:
            rendered = await sync_to_async(render)(pks)
            return {pk: entry_for(data) for pk, data in rendered.items()}, 0
        peeked = await cache.apeek(pks)
        entries = {pk: entry for pk, entry in zip(pks, peeked, strict=True) if entry is not None}
        missing = [pk for pk in pks if pk not in entries]
        if missing:
            filled, _ = await sync_to_async(cache.entries)(missing, render)
            entries.update(filled)
        return entries, len(pks) - len(missing)
