"""Views over the test catalog: planned, plain DRF, over budget, unplannable, private."""

from rest_framework import viewsets
from rest_framework.decorators import api_view, permission_classes
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from drf_scale.mixins import OptimizedQuerysetMixin
from tests.testapp import serializers
from tests.testapp.models import Brand, Category, Product


class Pages(PageNumberPagination):
    page_size = 10
    page_size_query_param = "page_size"
    max_page_size = 100


class ProductViewSet(OptimizedQuerysetMixin, viewsets.ModelViewSet):
    queryset = Product.objects.all()
    pagination_class = Pages
    permission_classes = [AllowAny]
    query_budget = 12  # an update validates, saves tags, and renders from a fresh fetch

    def get_serializer_class(self) -> type[BaseSerializer]:
        if self.action == "retrieve":
            return serializers.ProductDetailSerializer
        if self.action in ("create", "update", "partial_update"):
            return serializers.ProductWriteSerializer
        return serializers.ProductSerializer


class BrandViewSet(OptimizedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Brand.objects.all()
    serializer_class = serializers.BrandCatalogSerializer
    pagination_class = Pages
    permission_classes = [AllowAny]
    query_budget = 6


class CategoryViewSet(OptimizedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    """Over its budget of 2 (count, page, children), though with no N+1."""

    queryset = Category.objects.all()
    serializer_class = serializers.CategoryTreeSerializer
    pagination_class = Pages
    permission_classes = [AllowAny]
    query_budget = 2


class OpaqueProductViewSet(OptimizedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Product.objects.all()
    serializer_class = serializers.OpaqueProductSerializer
    pagination_class = Pages
    permission_classes = [AllowAny]


class PrivateBrandViewSet(OptimizedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Brand.objects.all()
    serializer_class = serializers.BrandSerializer
    pagination_class = Pages
    permission_classes = [IsAuthenticated]


class NaiveProductViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Product.objects.all()
    serializer_class = serializers.ProductSerializer
    pagination_class = Pages
    permission_classes = [AllowAny]


@api_view(["GET"])
@permission_classes([AllowAny])
def product_names(request: Request) -> Response:
    """A function view that runs two queries over its budget of one, set as an attribute."""
    return Response([p.name for p in Product.objects.all()] + [b.name for b in Brand.objects.all()])


product_names.query_budget = 1  # type: ignore[attr-defined]
