"""Routes whose queries look like N+1s between two page sizes and are not, and ones that are.

/grows/: a real N+1 (the parent, loaded per row that has one). /config/: a configuration
query run once per request, once a row on the page needs it (0 -> 1 -> 1). /prefetched/:
a prefetch that runs only once some row has a parent (0 -> 1 -> 1). /overridden/: a planned
view whose serializer's to_representation re-queries the brand per row, past the plan.
/falling/: a FastReadMixin view whose serializer falls back to DRF for two reasons.
"""

from typing import Any

from django.urls import include, path
from rest_framework import serializers, viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.routers import SimpleRouter

from drf_scale.mixins import FastReadMixin, OptimizedQuerysetMixin
from tests.checks_urls import ShoutingSerializer
from tests.testapp.models import Brand, Category, Product


class Pages(PageNumberPagination):
    page_size = 10
    page_size_query_param = "page_size"
    max_page_size = 100


class ParentNameSerializer(serializers.ModelSerializer):
    parent_name = serializers.CharField(source="parent.name", allow_null=True, default=None)

    class Meta:
        model = Category
        fields = ["id", "name", "parent_name"]


class GrowingViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Category.objects.order_by("id")
    serializer_class = ParentNameSerializer
    pagination_class = Pages
    permission_classes = [AllowAny]
    query_budget = 100


class PrefetchedViewSet(GrowingViewSet):
    queryset = Category.objects.order_by("id").prefetch_related("parent")


class ConfiguredSerializer(serializers.ModelSerializer):
    """``currency`` reads a configuration row once per request, for the first row that has
    a price over 1: never on a page of the first product alone (its price is 0.99)."""

    currency = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "name", "currency"]

    def get_currency(self, product: Product) -> str | None:
        if product.price < 1:
            return None
        if "currency" not in self.context:
            self.context["currency"] = Brand.objects.order_by("id").values_list("country")[0][0]
        return str(self.context["currency"])


class ConfiguredViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Product.objects.order_by("id")
    serializer_class = ConfiguredSerializer
    pagination_class = Pages
    permission_classes = [AllowAny]
    query_budget = 100


class RequeryingSerializer(serializers.ModelSerializer):
    """Planned (the brand is joined), then undone: the override fetches the brand again."""

    brand_name = serializers.CharField(source="brand.name")

    class Meta:
        model = Product
        fields = ["id", "name", "brand_name"]

    def to_representation(self, instance: Any) -> Any:
        data = super().to_representation(instance)
        data["brand_country"] = Brand.objects.get(pk=instance.brand_id).country
        return data


class OverriddenViewSet(OptimizedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Product.objects.all()
    serializer_class = RequeryingSerializer
    pagination_class = Pages
    permission_classes = [AllowAny]
    query_budget = 100


class FallingViewSet(FastReadMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Product.objects.order_by("id")
    serializer_class = ShoutingSerializer
    pagination_class = Pages
    permission_classes = [AllowAny]


router = SimpleRouter()
router.register("grows", GrowingViewSet, basename="grows")
router.register("prefetched", PrefetchedViewSet, basename="prefetched")
router.register("config", ConfiguredViewSet, basename="config")
router.register("overridden", OverriddenViewSet, basename="overridden")
router.register("falling", FallingViewSet, basename="falling")

urlpatterns = [path("", include(router.urls))]
