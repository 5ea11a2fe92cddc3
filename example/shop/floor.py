"""/floor/: the product list and detail by hand, values() + orjson, no DRF views.

The physical floor of the benchmark: the same JSON as the API with the least
work Python can do. Not a pattern to copy (it duplicates the contract).
"""

from collections import defaultdict
from decimal import Decimal

import orjson
from django.http import HttpRequest, HttpResponse
from rest_framework.utils.urls import remove_query_param, replace_query_param

from shop.filters import DEFAULT_PRODUCT_ORDERING, PRODUCT_ORDERINGS, ProductFilter, with_tiebreak
from shop.models import Product, Review
from shop.review_stats import REVIEW_STATS, rounded_rating
from shop.serializers import LATEST_REVIEWS

PAGE_SIZE, MAX_PAGE_SIZE = 20, 100
COLUMNS = (
    "id", "sku", "name", "price", "status", "brand_id", "brand__name",
    "category_id", "category__name", "category__parent_id", "created_at", "updated_at",
)  # fmt: skip


def _json(data, status: int = 200) -> HttpResponse:
    return HttpResponse(
        orjson.dumps(data, option=orjson.OPT_UTC_Z), status=status, content_type="application/json"
    )


def _products(rows: list[dict]) -> list[dict]:
    """Rows of COLUMNS and REVIEW_STATS to product dicts, with tags in one more query."""
    ids = [r["id"] for r in rows]
    tags = defaultdict(list)
    for pid, tid, tname in (
        Product.tags.through.objects.filter(product_id__in=ids)
        .values_list("product_id", "tag_id", "tag__name")
        .order_by("tag_id")
    ):
        tags[pid].append({"id": tid, "name": tname})
    out = []
    for r in rows:
        out.append(
            {
                "id": r["id"],
                "sku": r["sku"],
                "name": r["name"],
                "price": str(r["price"].quantize(Decimal("0.01"))),
                "status": r["status"],
                "brand": {"id": r["brand_id"], "name": r["brand__name"]},
                "category": {
                    "id": r["category_id"],
                    "name": r["category__name"],
                    "parent": r["category__parent_id"],
                },
                "tags": tags[r["id"]],
                "review_count": r["review_count"],
                "rating_avg": rounded_rating(r["rating_avg"]),
                "created_at": r["created_at"],
                "updated_at": r["updated_at"],
            }
        )
    return out


def _positive_int(raw: str | None, default: int, upper: int | None = None) -> int | None:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 1 and (upper is None or value <= upper) else None


def product_list(request: HttpRequest) -> HttpResponse:
    size = _positive_int(request.GET.get("page_size"), PAGE_SIZE, MAX_PAGE_SIZE)
    if size is None:
        return _json({"page_size": [f"Must be an integer from 1 to {MAX_PAGE_SIZE}."]}, 400)
    page = _positive_int(request.GET.get("page"), 1)
    if page is None:
        return _json({"detail": "Invalid page."}, 404)
    filterset = ProductFilter(request.GET, queryset=Product.objects.all())
    if not filterset.is_valid():
        return _json(filterset.errors, 400)
    ordering = [
        f for f in request.GET.get("ordering", "").split(",") if f.lstrip("-") in PRODUCT_ORDERINGS
    ] or list(DEFAULT_PRODUCT_ORDERING)
    queryset = filterset.qs.order_by(*with_tiebreak(ordering))
    count = queryset.count()
    if page > 1 and (page - 1) * size >= count:
        return _json({"detail": "Invalid page."}, 404)
    rows = list(queryset.values(*COLUMNS, **REVIEW_STATS)[(page - 1) * size : page * size])
    url = request.build_absolute_uri()
    previous = None
    if page == 2:
        previous = remove_query_param(url, "page")
    elif page > 2:
        previous = replace_query_param(url, "page", page - 1)
    return _json(
        {
            "count": count,
            "next": replace_query_param(url, "page", page + 1) if page * size < count else None,
            "previous": previous,
            "results": _products(rows),
        }
    )


def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    rows = list(Product.objects.filter(pk=pk).values(*COLUMNS, "description", **REVIEW_STATS))
    if not rows:
        return _json({"detail": "No Product matches the given query."}, 404)
    (product,) = _products(rows)
    product["description"] = rows[0]["description"]
    product["latest_reviews"] = [
        {
            "id": r["id"],
            "user": {"id": r["user_id"], "username": r["user__username"]},
            "rating": r["rating"],
            "title": r["title"],
            "body": r["body"],
            "created_at": r["created_at"],
        }
        for r in Review.objects.filter(product_id=pk)
        .order_by("-created_at", "-id")
        .values("id", "user_id", "user__username", "rating", "title", "body", "created_at")[
            :LATEST_REVIEWS
        ]
    ]
    return _json(product)
