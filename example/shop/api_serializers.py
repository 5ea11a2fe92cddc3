"""The /api/ read serializers: the same JSON as /naive/, declared so drf_scale can plan it.

Review statistics are annotations (one subquery each) instead of two queries per row,
and the five latest reviews are one declared Prefetch instead of a query per product.
"""

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from drf_scale.planner import requires
from drf_scale.sqljson import float_json
from shop.models import Product, Review
from shop.review_stats import REVIEW_STATS, rounded_rating
from shop.serializers import (
    LATEST_REVIEWS,
    BrandSerializer,
    CategorySerializer,
    ReviewSerializer,
    TagSerializer,
)


class RatingField(serializers.FloatField):
    """The average rating, rounded to two places in Python as /naive/ does."""

    def to_representation(self, value) -> float | None:
        return rounded_rating(value)

    def json_sql(self, value: str) -> str:
        """The same rating written by PostgreSQL (``render_in_database``): the exact average
        rounded to two places; on a tie of the third place, which Python rounds on the float,
        NULL: Python renders that row."""
        rounded = float_json(f"round(({value})::numeric, 2)")
        return f"CASE WHEN mod(({value})::numeric * 1000, 10) = 5 THEN NULL ELSE {rounded} END"


# The same JSON as /naive/'s serializers, but other classes: components of their own.
@extend_schema_serializer(component_name="ApiProduct")
@requires(annotate=REVIEW_STATS)
class ProductSerializer(serializers.ModelSerializer):
    brand = BrandSerializer(read_only=True)
    category = CategorySerializer(read_only=True)
    tags = TagSerializer(many=True, read_only=True)
    review_count = serializers.IntegerField(read_only=True)
    rating_avg = RatingField(read_only=True, allow_null=True)

    class Meta:
        model = Product
        fields = [
            "id", "sku", "name", "price", "status", "brand", "category", "tags",
            "review_count", "rating_avg", "created_at", "updated_at",
        ]  # fmt: skip


@requires(
    prefetch=[
        Prefetch(
            "reviews",
            queryset=Review.objects.order_by("-created_at", "-id")[:LATEST_REVIEWS],
            to_attr="latest_reviews",
        )
    ]
)
@extend_schema_serializer(component_name="ApiProductDetail")
class ProductDetailSerializer(ProductSerializer):
    latest_reviews = ReviewSerializer(many=True, read_only=True)

    class Meta(ProductSerializer.Meta):
        fields = [*ProductSerializer.Meta.fields, "description", "latest_reviews"]
