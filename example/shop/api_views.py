"""The /api/ views: the /naive/ contract, with drf_scale doing the heavy lifting."""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BrowsableAPIRenderer

from drf_scale.cache import CachedListMixin, CachedRetrieveMixin
from drf_scale.conditional import ConditionalWriteMixin
from drf_scale.mixins import FastReadMixin, ReadWriteSerializerMixin
from drf_scale.pagination import KeysetPagination
from drf_scale.planner import OptimizedQuerysetMixin
from drf_scale.renderers import ORJSONParser, ORJSONRenderer
from shop import api_serializers, views
from shop.api_stats import CategoryStatsView, TopProductsView
from shop.filters import DEFAULT_PRODUCT_ORDERING, PRODUCT_ORDERINGS
from shop.serializers import ProductWriteSerializer
from shop.views import BrandViewSet, CategoryViewSet, OrderViewSet, TagViewSet

__all__ = [
    "BrandViewSet",
    "CategoryStatsView",
    "CategoryViewSet",
    "OrderViewSet",
    "ProductViewSet",
    "TagViewSet",
    "TopProductsView",
]


class ProductPagination(KeysetPagination):
    """Cursor pages in the orderings of /naive/; ``?count=true`` adds a (maybe estimated) count."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = DEFAULT_PRODUCT_ORDERING
    ordering_fields = PRODUCT_ORDERINGS


@extend_schema_view(
    create=extend_schema(responses=api_serializers.ProductDetailSerializer),
    update=extend_schema(responses=api_serializers.ProductDetailSerializer),
    partial_update=extend_schema(responses=api_serializers.ProductDetailSerializer),
)
class ProductViewSet(
    CachedRetrieveMixin,
    CachedListMixin,
    ConditionalWriteMixin,
    FastReadMixin,
    ReadWriteSerializerMixin,
    OptimizedQuerysetMixin,
    views.ProductViewSet,
):
    """Cached representations with ETags, compiled reads, conditional writes, orjson."""

    # Products read the same for everyone; review_count and rating_avg read the reviews.
    cache_scope = "public"
    cache_depends_on = ("reviews",)
    # Anyone may read products and nothing is throttled: hits skip DRF's request handling.
    cache_hits_before_drf = True

    # Reads run 0 to 3 queries (tests/test_api_queries.py). A write validates brand, category,
    # tags and sku, saves the row and its tags, then reads it back (12); If-Match adds the row,
    # its lock and its current representation (5); without a broker the stats refresh runs
    # after the commit, inside the request (3).
    query_budget = 20
    pagination_class = ProductPagination
    filter_backends = [DjangoFilterBackend]  # the paginator orders the rows

    read_serializer_classes = {
        "list": api_serializers.ProductSerializer,
        "retrieve": api_serializers.ProductDetailSerializer,
    }
    write_serializer_class = ProductWriteSerializer
    renderer_classes = [ORJSONRenderer, BrowsableAPIRenderer]
    parser_classes = [ORJSONParser, FormParser, MultiPartParser]
