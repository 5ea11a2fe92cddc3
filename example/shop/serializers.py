"""The API contract, written as DRF tutorials write it (the /naive/ baseline)."""

from collections import Counter

from django.contrib.auth import get_user_model
from django.db.models import Avg
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from shop.models import MAX_ID, Brand, Category, Product, Review, Tag
from shop.review_stats import rounded_rating

LATEST_REVIEWS = 5


class BrandSerializer(serializers.ModelSerializer):
    class Meta:
        model = Brand
        fields = ["id", "name"]


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "name", "parent"]


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name"]


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username"]


class ReviewSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)

    class Meta:
        model = Review
        fields = ["id", "user", "rating", "title", "body", "created_at"]


class ProductSerializer(serializers.ModelSerializer):
    brand = BrandSerializer(read_only=True)
    category = CategorySerializer(read_only=True)
    tags = TagSerializer(many=True, read_only=True)
    review_count = serializers.SerializerMethodField()
    rating_avg = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = [
            "id", "sku", "name", "price", "status", "brand", "category", "tags",
            "review_count", "rating_avg", "created_at", "updated_at",
        ]  # fmt: skip

    def get_review_count(self, obj: Product) -> int:
        return obj.reviews.count()

    def get_rating_avg(self, obj: Product) -> float | None:
        return rounded_rating(obj.reviews.aggregate(avg=Avg("rating"))["avg"])


class ProductDetailSerializer(ProductSerializer):
    latest_reviews = serializers.SerializerMethodField()

    class Meta(ProductSerializer.Meta):
        fields = [*ProductSerializer.Meta.fields, "description", "latest_reviews"]

    @extend_schema_field(ReviewSerializer(many=True))
    def get_latest_reviews(self, obj: Product) -> list[dict]:
        reviews = obj.reviews.order_by("-created_at", "-id")[:LATEST_REVIEWS]
        return ReviewSerializer(reviews, many=True).data


# A price as the schema states it: greater than zero, at most 8 digits then 2 decimals.
POSITIVE_PRICE = r"^(?:0*[1-9]\d{0,7}(?:\.\d{0,2})?|0*\.(?:0[1-9]|[1-9]\d?))$"


@extend_schema_field({"type": "string", "format": "decimal", "pattern": POSITIVE_PRICE})
class PriceField(serializers.DecimalField):
    """The model's DecimalField, documented with validate_price's bound."""


class ProductWriteSerializer(serializers.ModelSerializer):
    price = PriceField(max_digits=10, decimal_places=2)
    tags = serializers.PrimaryKeyRelatedField(queryset=Tag.objects.all(), many=True, required=False)

    class Meta:
        model = Product
        fields = [
            "sku",
            "name",
            "description",
            "price",
            "stock",
            "status",
            "brand",
            "category",
            "tags",
        ]

    def validate_price(self, value):
        if value <= 0:
            raise serializers.ValidationError("Must be greater than zero.")
        return value


class OrderLineInputSerializer(serializers.Serializer):
    product = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    quantity = serializers.IntegerField(min_value=1, max_value=1000)


class OrderCreateSerializer(serializers.Serializer):
    lines = OrderLineInputSerializer(many=True, allow_empty=False, max_length=100)

    def quantities(self) -> Counter[int]:
        """{product_id: total quantity}, lines of the same product summed."""
        totals: Counter[int] = Counter()
        for line in self.validated_data["lines"]:
            totals[line["product"]] += line["quantity"]
        return totals


class OrderLineSerializer(serializers.Serializer):
    product = serializers.IntegerField(source="product_id")
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=10, decimal_places=2)


class OrderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    lines = OrderLineSerializer(many=True)
    total = serializers.DecimalField(max_digits=14, decimal_places=2)


class TopProductsQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=365, default=30)


# The rows of the stats (built as dicts by shop.stats): declared for the OpenAPI schema.


class CategoryRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class CategorySalesSerializer(serializers.Serializer):
    category = CategoryRefSerializer()
    revenue = serializers.DecimalField(max_digits=None, decimal_places=2)
    units = serializers.IntegerField()
    orders = serializers.IntegerField()


class ProductRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()


class TopProductSerializer(serializers.Serializer):
    product = ProductRefSerializer()
    units = serializers.IntegerField()
    revenue = serializers.DecimalField(max_digits=None, decimal_places=2)
