"""The /naive/ API: DRF defaults as tutorials write them. Our baseline; keep it naive."""

from django.db import IntegrityError, transaction
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.response import Response
from rest_framework.views import APIView

from shop import stats
from shop.filters import PRODUCT_ORDERINGS, ProductFilter, TotalOrderingFilter
from shop.models import Brand, Category, Product, Tag
from shop.orders import order_total, place_order
from shop.pagination import StrictPageNumberPagination
from shop.permissions import IsStaffOrReadOnly
from shop.schema import BODY_ERRORS, errors
from shop.serializers import (
    BrandSerializer,
    CategorySalesSerializer,
    CategorySerializer,
    OrderCreateSerializer,
    OrderSerializer,
    ProductDetailSerializer,
    ProductSerializer,
    ProductWriteSerializer,
    ReviewSerializer,
    TagSerializer,
    TopProductSerializer,
    TopProductsQuerySerializer,
)

# The errors of the /naive/ product routes (the /api/ ones add conditional requests).
NO_PAGE = (404, "No such page.")
NO_PRODUCT = (404, "No such product.")
SKU_RACE = (409, "The sku was taken by a concurrent write.")
PRODUCT_WRITE_ERRORS = errors(400, 403, NO_PRODUCT, SKU_RACE, *BODY_ERRORS)


@extend_schema_view(
    list=extend_schema(responses={200: ProductSerializer, **errors(400, NO_PAGE)}),
    retrieve=extend_schema(responses={200: ProductDetailSerializer, **errors(NO_PRODUCT)}),
    partial_update=extend_schema(responses={200: ProductDetailSerializer, **PRODUCT_WRITE_ERRORS}),
    destroy=extend_schema(
        responses={204: None, **errors(403, NO_PRODUCT, (409, "Orders refer to the product."))}
    ),
)
class ProductViewSet(viewsets.ModelViewSet):
    query_budget = None  # the baseline runs N+1 queries on purpose: not checked
    queryset = Product.objects.all()
    pagination_class = StrictPageNumberPagination
    permission_classes = [IsStaffOrReadOnly]
    filter_backends = [DjangoFilterBackend, TotalOrderingFilter]
    filterset_class = ProductFilter
    ordering_fields = PRODUCT_ORDERINGS
    ordering = ["-created_at"]

    def get_serializer_class(self):
        if self.action == "list":
            return ProductSerializer
        if self.action in ("create", "update", "partial_update"):
            return ProductWriteSerializer
        if self.action == "reviews":
            return ReviewSerializer
        return ProductDetailSerializer

    def perform_write(self, serializer) -> Response:
        """Save, then answer with the read representation."""
        return Response(self.render_saved(serializer.save()))

    def render_saved(self, instance: Product) -> dict:
        return ProductDetailSerializer(instance, context=self.get_serializer_context()).data

    @extend_schema(
        responses={201: ProductDetailSerializer, **errors(400, 403, SKU_RACE, *BODY_ERRORS)}
    )
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        response = self.perform_write(serializer)
        response.status_code = status.HTTP_201_CREATED
        return response

    @extend_schema(responses={200: ProductDetailSerializer, **PRODUCT_WRITE_ERRORS})
    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return self.perform_write(serializer)

    @extend_schema(
        methods=["GET"],
        responses={
            200: ReviewSerializer(many=True),
            **errors(400, (404, "No such product or page.")),
        },
        filters=False,  # the product's reviews, whatever the product filters
    )
    @extend_schema(
        methods=["POST"],
        request=ReviewSerializer,
        responses={201: ReviewSerializer, **errors(400, 403, NO_PRODUCT, *BODY_ERRORS)},
    )
    @action(
        detail=True,
        methods=["get", "post"],
        permission_classes=[IsAuthenticatedOrReadOnly],
        pagination_class=StrictPageNumberPagination,
    )
    def reviews(self, request, pk=None):
        product = self.get_object()
        if request.method == "POST":
            serializer = ReviewSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            if product.reviews.filter(user=request.user).exists():
                raise ValidationError({"detail": "You have already reviewed this product."})
            try:
                with transaction.atomic():
                    serializer.save(product=product, user=request.user)
            except IntegrityError:
                raise ValidationError(
                    {"detail": "You have already reviewed this product."}
                ) from None
            return Response(serializer.data, status=status.HTTP_201_CREATED)
        paginator = StrictPageNumberPagination()  # the reviews keep pages on every router
        page = paginator.paginate_queryset(
            product.reviews.order_by("-created_at", "-id"), request, view=self
        )
        return paginator.get_paginated_response(ReviewSerializer(page, many=True).data)


@extend_schema_view(
    list=extend_schema(responses={200: BrandSerializer, **errors(400, NO_PAGE)}),
    retrieve=extend_schema(responses={200: BrandSerializer, **errors(404)}),
)
class BrandViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Brand.objects.all()
    serializer_class = BrandSerializer
    pagination_class = StrictPageNumberPagination


@extend_schema_view(
    list=extend_schema(responses={200: CategorySerializer, **errors(400, NO_PAGE)}),
    retrieve=extend_schema(responses={200: CategorySerializer, **errors(404)}),
)
class CategoryViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Category.objects.all()
    serializer_class = CategorySerializer
    pagination_class = StrictPageNumberPagination


@extend_schema_view(
    list=extend_schema(responses={200: TagSerializer, **errors(400, NO_PAGE)}),
    retrieve=extend_schema(responses={200: TagSerializer, **errors(404)}),
)
class TagViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Tag.objects.all()
    serializer_class = TagSerializer
    pagination_class = StrictPageNumberPagination


class OrderViewSet(mixins.CreateModelMixin, viewsets.GenericViewSet):
    # Lock, order, stock, lines (and savepoints): whatever the lines. Without a broker the
    # three hot stats refresh in-process at commit, inside the request: three more.
    query_budget = 9
    serializer_class = OrderCreateSerializer
    permission_classes = [IsAuthenticated]

    @extend_schema(
        # Lines are a list of objects: JSON only (forms cannot carry them).
        request={"application/json": OrderCreateSerializer},
        responses={
            201: OrderSerializer,
            **errors(400, 403, (409, "A product is not for sale or lacks stock."), *BODY_ERRORS),
        },
    )
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order, lines = place_order(request.user, serializer.quantities())
        body = {"id": order.id, "created_at": order.created_at, "lines": lines}
        body["total"] = order_total(lines)
        return Response(OrderSerializer(body).data, status=status.HTTP_201_CREATED)


class CategoryStatsView(APIView):
    """Revenue, units and orders per category over the last 30 days."""

    @extend_schema(responses=CategorySalesSerializer(many=True))
    def get(self, request):
        return Response(stats.category_sales(days=30))


class TopProductsView(APIView):
    """The best-selling products over the last ?days=N days (1 to 365)."""

    @extend_schema(
        parameters=[TopProductsQuerySerializer],
        responses={200: TopProductSerializer(many=True), **errors(400)},
    )
    def get(self, request):
        query = TopProductsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(stats.top_products(days=query.validated_data["days"]))
