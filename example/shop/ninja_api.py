"""/ninja/: the product list and detail in Django Ninja, a bench peer only."""

from datetime import datetime
from decimal import Decimal

import orjson
from django.db.models import Prefetch
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, NinjaAPI, Query, Schema
from ninja.renderers import BaseRenderer
from rest_framework.utils.urls import remove_query_param, replace_query_param

from shop.filters import DEFAULT_PRODUCT_ORDERING, PRODUCT_ORDERINGS, ProductFilter, with_tiebreak
from shop.models import Product, Review
from shop.review_stats import REVIEW_STATS, rounded_rating
from shop.serializers import LATEST_REVIEWS


class ORJSONRenderer(BaseRenderer):
    media_type = "application/json"

    def render(self, request, data, *, response_status):
        return orjson.dumps(data, default=str, option=orjson.OPT_UTC_Z)


api = NinjaAPI(urls_namespace="ninja", renderer=ORJSONRenderer(), docs_url=None)


class BrandOut(Schema):
    id: int
    name: str


class CategoryOut(Schema):
    id: int
    name: str
    parent: int | None = Field(None, alias="parent_id")


class TagOut(Schema):
    id: int
    name: str


class UserOut(Schema):
    id: int
    username: str


class ReviewOut(Schema):
    id: int
    user: UserOut
    rating: int
    title: str
    body: str
    created_at: datetime


class ProductOut(Schema):
    id: int
    sku: str
    name: str
    price: Decimal
    status: str
    brand: BrandOut
    category: CategoryOut
    tags: list[TagOut]
    review_count: int
    rating_avg: float | None
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_rating_avg(obj) -> float | None:
        return rounded_rating(obj.rating_avg)


class ProductDetailOut(ProductOut):
    description: str
    latest_reviews: list[ReviewOut]


class ProductPage(Schema):
    count: int
    next: str | None
    previous: str | None
    results: list[ProductOut]


class ListParams(Schema):
    page: int = Field(1, ge=1)
    page_size: int = Field(20, ge=1, le=100)
    ordering: str = ""


def _products():
    return (
        Product.objects.select_related("brand", "category")
        .prefetch_related("tags")
        .annotate(**REVIEW_STATS)
    )


@api.get("/products/", response=ProductPage)
def product_list(request: HttpRequest, params: Query[ListParams]):
    ordering = [
        f for f in params.ordering.split(",") if f.lstrip("-") in PRODUCT_ORDERINGS
    ] or list(DEFAULT_PRODUCT_ORDERING)
    filterset = ProductFilter(request.GET, queryset=_products())
    if not filterset.is_valid():
        return api.create_response(request, filterset.errors, status=400)
    queryset = filterset.qs
    count = queryset.count()
    start = (params.page - 1) * params.page_size
    url = request.build_absolute_uri()
    previous = None
    if params.page == 2:
        previous = remove_query_param(url, "page")
    elif params.page > 2:
        previous = replace_query_param(url, "page", params.page - 1)
    more = start + params.page_size < count
    return {
        "count": count,
        "next": replace_query_param(url, "page", params.page + 1) if more else None,
        "previous": previous,
        "results": list(
            queryset.order_by(*with_tiebreak(ordering))[start : start + params.page_size]
        ),
    }


@api.get("/products/{pk}/", response=ProductDetailOut)
def product_detail(request: HttpRequest, pk: int):
    latest = Review.objects.select_related("user").order_by("-created_at", "-id")
    return get_object_or_404(
        _products().prefetch_related(
            Prefetch("reviews", queryset=latest[:LATEST_REVIEWS], to_attr="latest_reviews")
        ),
        pk=pk,
    )
