"""The /api/ views: the /naive/ contract, with drf_scale doing the heavy lifting."""

from django.conf import settings
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BrowsableAPIRenderer

from drf_scale.pagination import KeysetPagination
from drf_scale.renderers import ORJSONParser, ORJSONRenderer
from drf_scale.viewsets import ScaleModelViewSet
from shop import api_serializers, views
from shop.api_stats import CategoryStatsView, TopProductsView
from shop.filters import DEFAULT_PRODUCT_ORDERING, PRODUCT_ORDERINGS, ProductFilter
from shop.models import Product
from shop.permissions import IsStaffOrReadOnly
from shop.schema import (
    BODY_ERRORS,
    ETAG,
    IF_MATCH,
    IF_NONE_MATCH_READ,
    IF_NONE_MATCH_WRITE,
    NOT_MODIFIED,
    WEAK_ETAG,
    errors,
    if_match_errors,
)
from shop.serializers import ProductWriteSerializer, ReviewSerializer
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


# The /naive/ errors, plus conditional requests: 304 on reads, 412 (and 428) on writes.
WRITE = extend_schema(
    parameters=[IF_MATCH, IF_NONE_MATCH_WRITE, ETAG],
    responses={
        200: api_serializers.ProductDetailSerializer,
        **views.PRODUCT_WRITE_ERRORS,
        **errors(*if_match_errors()),
    },
)


@extend_schema_view(
    list=extend_schema(
        parameters=[IF_NONE_MATCH_READ, WEAK_ETAG],
        responses={200: api_serializers.ProductSerializer, 304: NOT_MODIFIED, **errors(400)},
    ),
    retrieve=extend_schema(
        parameters=[IF_NONE_MATCH_READ, ETAG],
        responses={
            200: api_serializers.ProductDetailSerializer,
            304: NOT_MODIFIED,
            **errors(views.NO_PRODUCT),
        },
    ),
    create=extend_schema(
        parameters=[IF_NONE_MATCH_WRITE, ETAG],
        responses={
            201: api_serializers.ProductDetailSerializer,
            **errors(400, 403, views.SKU_RACE, 412, *BODY_ERRORS),
        },
    ),
    update=WRITE,
    partial_update=WRITE,
    destroy=extend_schema(
        parameters=[IF_MATCH, IF_NONE_MATCH_WRITE],
        responses={
            204: None,
            **errors(403, views.NO_PRODUCT, (409, "Orders refer to the product.")),
            **errors(*if_match_errors()),
        },
    ),
)
class ProductViewSet(ScaleModelViewSet):
    """The /naive/ product contract on the composed viewset: cached representations with
    ETags, compiled reads, keyset pages, conditional writes, orjson."""

    queryset = Product.objects.all()
    permission_classes = [IsStaffOrReadOnly]
    filter_backends = [DjangoFilterBackend]  # the paginator orders the rows
    filterset_class = ProductFilter
    pagination_class = ProductPagination

    read_serializer_classes = {
        "list": api_serializers.ProductSerializer,
        "retrieve": api_serializers.ProductDetailSerializer,
        "reviews": ReviewSerializer,
    }
    write_serializer_class = ProductWriteSerializer
    write_serializer_classes = {"reviews": ReviewSerializer}
    unplanned_actions = (*ScaleModelViewSet.unplanned_actions, "reviews")  # reads only the pk
    renderer_classes = [ORJSONRenderer, BrowsableAPIRenderer]
    parser_classes = [ORJSONParser, FormParser, MultiPartParser]

    # On PostgreSQL the database writes the list's JSON (drf_scale.sqljson): lists are the
    # reads a replica serves; elsewhere the compiled plan renders it. RENDER_IN_DATABASE=off
    # (the bench's "uncached" target) renders it in Python.
    render_in_database = settings.RENDER_IN_DATABASE

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

    reviews = views.ProductViewSet.reviews  # the /naive/ action, as it is
