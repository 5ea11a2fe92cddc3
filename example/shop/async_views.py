"""Async views for I/O-bound endpoints: the worker serves other requests while one waits.

``product_detail`` and ``product_list`` are /api/'s product detail and list for ASGI, through
``drf_scale.cache.AsyncCachedReads``: cached representations come from Redis through the async
client, without a thread; the list pages by cursor through
``KeysetPagination.apaginate_queryset`` on the async ORM; misses render in one sync_to_async
call.

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
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.decorators.http import require_safe
from rest_framework import serializers

from drf_scale.cache import AsyncCachedReads
from shop.api_serializers import ProductDetailSerializer, ProductSerializer
from shop.api_views import ProductPagination
from shop.filters import ProductFilter
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


detail_reads = AsyncCachedReads(ProductDetailSerializer, depends_on=("reviews",))
list_reads = AsyncCachedReads(ProductSerializer, depends_on=("reviews",))


@require_safe
async def product_detail(request: HttpRequest, pk: int) -> HttpResponseBase:
    """GET /api/async/products/<pk>/: the JSON and ETag of /api/products/<pk>/."""
    return await detail_reads.aretrieve(request, pk)


@require_safe
async def product_list(request: HttpRequest) -> HttpResponse:
    """GET /api/async/products/: the filters, cursor pages and JSON of /api/products/."""
    filterset = ProductFilter(request.GET, queryset=Product.objects.all())
    if not filterset.is_valid():
        return JsonResponse(filterset.errors, status=400)
    return await list_reads.alist(request, filterset.qs, ProductPagination())
