"""The /api/ stats: registered aggregates served from the cache (/naive/ computes per request)."""

from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers

from drf_scale.aggregates import AggregateView
from shop import aggregates
from shop.serializers import TopProductsQuerySerializer

STORED_RESULT = inline_serializer(
    "StoredAggregate",
    {
        "computed_at": serializers.DateTimeField(),
        "age": serializers.IntegerField(help_text="Seconds since computed_at (the Age header)."),
        "stale": serializers.BooleanField(help_text="Older than the aggregate's max_age."),
        "results": serializers.JSONField(),
    },
)


@extend_schema_view(get=extend_schema(responses={200: STORED_RESULT}))
class CategoryStatsView(AggregateView):
    """Revenue, units and orders per category over the last 30 days, precomputed."""

    aggregate = aggregates.category_sales


@extend_schema_view(
    get=extend_schema(parameters=[TopProductsQuerySerializer], responses={200: STORED_RESULT})
)
class TopProductsView(AggregateView):
    """The best-selling products over the last ?days=N days (1 to 365), precomputed."""

    aggregate = aggregates.top_products
