"""The /api/ stats: registered aggregates served from the cache (/naive/ computes per request)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from drf_scale.aggregates import AggregateView
from shop import aggregates
from shop.schema import ErrorSerializer, errors
from shop.serializers import (
    CategorySalesSerializer,
    TopProductSerializer,
    TopProductsQuerySerializer,
)


def stored(name: str, results: serializers.Serializer) -> serializers.Serializer:
    """The stored result of an aggregate: ``results`` with when it was computed."""
    return inline_serializer(
        name,
        {
            "computed_at": serializers.DateTimeField(),
            "age": serializers.IntegerField(
                help_text="Seconds since computed_at (the Age header)."
            ),
            "stale": serializers.BooleanField(help_text="Older than the aggregate's max_age."),
            "results": results,
        },
    )


# A result not computed yet is a 202 (drf_scale.aggregates.aggregate_response).
COMPUTING = OpenApiResponse(ErrorSerializer, description="Being computed: retry after Retry-After.")
HEADERS = [
    OpenApiParameter(
        "Age", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[200], description="Seconds."
    ),
    OpenApiParameter(
        "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[202],
        description="Seconds to wait before asking again.",
    ),
]  # fmt: skip


@extend_schema_view(
    get=extend_schema(
        parameters=HEADERS,
        responses={
            200: stored("StoredCategorySales", CategorySalesSerializer(many=True)),
            202: COMPUTING,
        },
    )
)
class CategoryStatsView(AggregateView):
    """Revenue, units and orders per category over the last 30 days, precomputed."""

    aggregate = aggregates.category_sales


@extend_schema_view(
    get=extend_schema(
        parameters=[TopProductsQuerySerializer, *HEADERS],
        responses={
            200: stored("StoredTopProducts", TopProductSerializer(many=True)),
            202: COMPUTING,
            **errors(400),
        },
    )
)
class TopProductsView(AggregateView):
    """The best-selling products over the last ?days=N days (1 to 365), precomputed."""

    aggregate = aggregates.top_products
