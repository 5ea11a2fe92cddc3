"""Async views for I/O-bound endpoints: the worker serves other requests while one waits.

``product_detail`` and ``product_list`` are /api/'s product detail and list for ASGI: cached
representations come from Redis through the async client, without a thread; the list pages
by cursor through ``KeysetPagination.apaginate_queryset`` on the async ORM; misses render in
one sync_to_async call.

A plain async Django view (DRF views are sync). The ORM work of a request runs in one
``sync_to_async`` call, then the upstream call awaits on the event loop with a timeout:
a slow provider is a 504, one that is down a 503, never a hung worker.
"""

import asyncio
import functools
import ssl
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from rest_framework import serializers
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.views import exception_handler

from drf_scale.cache.store import Entry
from drf_scale.cache.views import RepresentationCache, entry_for, render_by_pk
from drf_scale.conf import scale_settings
from drf_scale.fast import compile_read_plan
from drf_scale.http import not_modified, set_cache_headers
from drf_scale.renderers import ORJSONRenderer
from shop.api_serializers import ProductDetailSerializer, ProductSerializer
from shop.api_views import ProductPagination
from shop.filters import PRODUCT_ORDERINGS, ProductFilter
from shop.models import Product


class ShippingQuoteQuerySerializer(serializers.Serializer):
    dest = serializers.RegexField(
        r"^[A-Z]{2}$", error_messages={"invalid": "Use a two-letter country code, e.g. FR."}
    )
    quantity = serializers.IntegerField(min_value=1, max_value=100, default=1)


class UpstreamError(Exception):
    """The shipping provider did not give a usable quote; carries the answer to send."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@functools.cache
def _tls() -> ssl.SSLContext:
    """Loaded once: building it is most of the cost of a new client."""
    return httpx.create_ssl_context()


def _product_price(pk: int) -> Decimal | None:
    """All the ORM work of a quote, run in one sync_to_async call."""
    return Product.objects.filter(pk=pk).values_list("price", flat=True).first()


async def fetch_quote(dest: str, items: int, value: Decimal) -> dict[str, Any]:
    """Ask the provider at settings.SHIPPING_URL; the whole exchange, connecting included,
    gets settings.SHIPPING_TIMEOUT seconds."""
    # A client per request: one shared client would be bound to the event loop that made
    # it, and a sync server (or the test client) runs each request in a loop of its own.
    try:
        async with (
            asyncio.timeout(settings.SHIPPING_TIMEOUT),
            httpx.AsyncClient(verify=_tls(), timeout=None) as client,
        ):
            response = await client.get(
                f"{settings.SHIPPING_URL}/quote",
                params={"dest": dest, "items": items, "value": str(value)},
            )
    except TimeoutError:
        raise UpstreamError(504, "Shipping provider timed out.") from None
    except httpx.TransportError:
        raise UpstreamError(503, "Shipping provider unavailable.") from None
    if response.status_code >= 500:
        raise UpstreamError(503, "Shipping provider unavailable.")
    try:
        response.raise_for_status()
        body = response.json()
        return {
            "carrier": str(body["carrier"]),
            "price": str(Decimal(body["price"])),
            "eta_days": int(body["eta_days"]),
        }
    except (httpx.HTTPStatusError, ValueError, KeyError, TypeError, InvalidOperation):
        raise UpstreamError(502, "Shipping provider sent an invalid answer.") from None


async def shipping_quote(request: HttpRequest, pk: int) -> JsonResponse:
    """GET /products/{id}/shipping-quote/?dest=FR&quantity=2: the provider's quote."""
    if request.method != "GET":
        response = JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
        response["Allow"] = "GET"
        return response
    query = ShippingQuoteQuerySerializer(data=request.GET)
    if not query.is_valid():
        return JsonResponse(query.errors, status=400)
    dest, quantity = query.validated_data["dest"], query.validated_data["quantity"]
    price = await sync_to_async(_product_price)(pk)
    if price is None:
        return JsonResponse({"detail": "No Product matches the given query."}, status=404)
    try:
        quote = await fetch_quote(dest, quantity, price * quantity)
    except UpstreamError as exc:
        return JsonResponse({"detail": exc.detail}, status=exc.status)
    return JsonResponse({"product": pk, "dest": dest, "quantity": quantity, **quote})


def _render_detail(pk: int) -> Any:
    """The /api/ detail representation of product ``pk`` (None if there is none)."""
    rows = compile_read_plan(ProductDetailSerializer).execute(Product.objects.filter(pk=pk))
    return rows[0] if rows else None


def _fetch_detail(pk: int) -> tuple[Entry | None, str]:
    """A miss: the sync path, with its lease, in one sync_to_async call."""
    if not scale_settings.CACHE_ENABLED:
        data = _render_detail(pk)
        return (None if data is None else entry_for(data)), "bypass"
    cache = RepresentationCache(ProductDetailSerializer, "public")
    return cache.fetch(pk, functools.partial(_render_detail, pk))


@require_safe
async def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """GET /api/async/products/<pk>/: the JSON and ETag of /api/products/<pk>/."""
    cache = RepresentationCache(ProductDetailSerializer, "public")
    [entry] = await cache.apeek([pk]) if scale_settings.CACHE_ENABLED else [None]
    state = "hit"
    if entry is None:
        entry, state = await sync_to_async(_fetch_detail)(pk)
    if entry is None:
        return JsonResponse({"detail": "No Product matches the given query."}, status=404)
    response = not_modified(request, entry.etag, public=True) or HttpResponse(
        entry.body, content_type="application/json"
    )
    set_cache_headers(response, public=True, etag=entry.etag)
    response["X-Cache"] = state
    return response


def _render_rows(pks: list[int]) -> dict[int, Any]:
    plan = compile_read_plan(ProductSerializer)
    return render_by_pk(plan, Product.objects.all(), pks, context={})


async def _list_entries(pks: list[int]) -> tuple[dict[int, Entry], int]:
    """The page's entries: hits on the event loop, the misses in one sync_to_async call."""
    cache = RepresentationCache(ProductSerializer, "public")
    if not scale_settings.CACHE_ENABLED:
        rendered = await sync_to_async(_render_rows)(pks)
        return {pk: entry_for(data) for pk, data in rendered.items()}, 0
    peeked = await cache.apeek(pks)
    entries = {pk: entry for pk, entry in zip(pks, peeked, strict=True) if entry is not None}
    missing = [pk for pk in pks if pk not in entries]
    if missing:
        filled, _ = await sync_to_async(cache.entries)(missing, _render_rows)
        entries.update(filled)
    return entries, len(pks) - len(missing)


@require_safe
async def product_list(request: HttpRequest) -> HttpResponse:
    """GET /api/async/products/: the filters, cursor pages and JSON of /api/products/."""
    drf_request = Request(request)
    filterset = ProductFilter(request.GET, queryset=Product.objects.all())
    paginator = ProductPagination()
    try:
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        keys = filterset.qs.values("id", *PRODUCT_ORDERINGS)
        page = await paginator.apaginate_queryset(keys, drf_request)
    except APIException as error:
        failed = exception_handler(error, {})
        return JsonResponse(failed.data, status=failed.status_code, safe=False)
    pks = [row["id"] for row in page]
    entries, hits = await _list_entries(pks)
    results = [orjson.Fragment(entries[pk].body) for pk in pks if pk in entries]
    body = ORJSONRenderer().render(paginator.get_paginated_response(results).data)
    response = HttpResponse(body, content_type="application/json")
    response["X-Cache"] = f"{hits}/{len(pks)} hit"
    return response
