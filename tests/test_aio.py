"""drf_scale.cache.AsyncCachedReads in process, called as an async view calls it.

The reference service's async views (tests/test_cache.py, and under a real ASGI server
tests/test_asgi.py) cover hits, misses, 304s, 404s and cursor pages; these cover the rest.
"""

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncRequestFactory
from rest_framework.pagination import LimitOffsetPagination

from drf_scale.cache import AsyncCachedReads
from drf_scale.fast import compile_read_plan
from drf_scale.queries import record_queries
from shop.api_serializers import ProductDetailSerializer, ProductSerializer
from shop.models import Product
from tests.factories import make_catalog

pytestmark = pytest.mark.django_db(transaction=True)

detail_reads = AsyncCachedReads(ProductDetailSerializer, depends_on=("reviews",))
list_reads = AsyncCachedReads(ProductSerializer, depends_on=("reviews",))


@pytest.fixture
async def products():
    catalog = await sync_to_async(make_catalog)(products=8)
    yield catalog["products"]
    await sync_to_async(connections.close_all)()  # the ORM ran in sync_to_async's thread


async def test_a_pk_that_is_not_one_is_a_404_without_a_query(products):
    with record_queries() as log:
        response = await detail_reads.aretrieve(AsyncRequestFactory().get("/"), "seven")
    assert response.status_code == 404 and log.count == 0
    assert orjson.loads(response.content) == {"detail": "No Product matches the given query."}


async def test_cache_off_is_a_bypass_with_the_same_body_and_etag(products, settings):
    request = AsyncRequestFactory().get("/")
    pk = products[2].pk
    await detail_reads.aretrieve(request, pk)
    cached = await detail_reads.aretrieve(request, pk)
    settings.DRF_SCALE = {**settings.DRF_SCALE, "CACHE_ENABLED": False}
    bypass = await detail_reads.aretrieve(request, pk)
    assert (cached["X-Cache"], bypass["X-Cache"]) == ("hit", "bypass")
    assert (bypass.content, bypass["ETag"]) == (cached.content, cached["ETag"])
    page = await list_reads.alist(
        AsyncRequestFactory().get("/?limit=3"),
        Product.objects.order_by("id"),
        LimitOffsetPagination(),
    )
    assert page["X-Cache"] == "0/3 hit"


async def test_a_paginator_without_apaginate_queryset_pages_in_a_thread(products):
    """LimitOffsetPagination (sync only): the rows of the page, then the same from the cache."""
    request = AsyncRequestFactory().get("/?limit=5&offset=2")
    queryset = Product.objects.order_by("id")
    cold = await list_reads.alist(request, queryset, LimitOffsetPagination())
    warm = await list_reads.alist(request, queryset, LimitOffsetPagination())
    ids = sorted(product.pk for product in products)[2:7]
    plan = compile_read_plan(ProductSerializer)
    expected = await sync_to_async(plan.execute)(Product.objects.filter(pk__in=ids).order_by("id"))
    body = orjson.loads(cold.content)
    assert body["count"] == 8 and orjson.loads(orjson.dumps(expected)) == body["results"]
    assert (cold["X-Cache"], warm["X-Cache"]) == ("0/5 hit", "5/5 hit")
    assert warm.content == cold.content
