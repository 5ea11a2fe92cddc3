"""/constant/products/<id>/: one fixed JSON body whatever the id, the framework's floor.

No database, serializer or cache: what a request costs Django itself (routing, middleware,
HttpResponse). bench.cache measures the cached /api/ detail against it. The body has the
shape and size (about 600 bytes) of a product detail. /constant/redis/products/<id>/ also
makes one Redis round trip (a GET): the floor of any cache that lives in Redis.
"""

import functools
import json
import os

import redis
from django.http import HttpRequest, HttpResponse
from django.urls import path

BODY = json.dumps(
    {
        "id": 1,
        "sku": "SKU-00000001",
        "name": "Lightweight Carbon Pan",
        "price": "3.99",
        "status": "active",
        "brand": {"id": 1101, "name": "Juniperspring"},
        "category": {"id": 86, "name": "Tools Premium", "parent": 6},
        "tags": [{"id": 202, "name": "eco-collection"}],
        "review_count": 1,
        "rating_avg": 4.0,
        "created_at": "2025-11-24T23:59:40Z",
        "updated_at": "2026-01-20T02:45:38Z",
        "description": "A lightweight pan in carbon. Ships in recyclable packaging.",
        "latest_reviews": [
            {
                "id": 999808,
                "user": {"id": 77298, "username": "shopper0077297"},
                "rating": 4,
                "title": "Solid choice",
                "body": "Great value for the money.",
                "created_at": "2026-09-04T11:39:09Z",
            }
        ],
    },
    separators=(",", ":"),
).encode()


def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The same bytes for every id."""
    return HttpResponse(BODY, content_type="application/json")


@functools.cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


def product_detail_after_redis(request: HttpRequest, pk: int) -> HttpResponse:
    """The same bytes, after one Redis round trip."""
    _redis().get(f"constant:{pk}")
    return HttpResponse(BODY, content_type="application/json")


urlpatterns = [
    path("products/<int:pk>/", product_detail),
    path("redis/products/<int:pk>/", product_detail_after_redis),
]
