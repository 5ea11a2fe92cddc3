"""Serializers exercising every field kind the planner handles, and one it cannot see."""

from django.db.models import Count, Prefetch
from rest_framework import serializers

from drf_scale.planner import requires
from tests.testapp.models import Brand, Category, Customer, Product, Review, Tag, Warranty


class BrandSerializer(serializers.ModelSerializer):
    class Meta:
        model = Brand
        fields = ["id", "name"]


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name"]


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["id", "name"]


class ReviewSerializer(serializers.ModelSerializer):
    customer = CustomerSerializer()

    class Meta:
        model = Review
        fields = ["id", "rating", "title", "customer"]


class WarrantySerializer(serializers.ModelSerializer):
    class Meta:
        model = Warranty
        fields = ["id", "years"]


class PricingSerializer(serializers.Serializer):
    """Rendered with source='*': reads the product itself."""

    price = serializers.DecimalField(max_digits=8, decimal_places=2)
    status = serializers.CharField(source="get_status_display")


class ProductSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="product-detail")
    brand = BrandSerializer()  # forward FK
    brand_name = serializers.CharField(source="brand.name")  # dotted source
    brand_url = serializers.HyperlinkedRelatedField(
        source="brand", view_name="brand-detail", read_only=True
    )
    category = serializers.PrimaryKeyRelatedField(read_only=True)  # category_id, no join
    category_name = serializers.SlugRelatedField(
        source="category", slug_field="name", read_only=True
    )
    parent_category = serializers.CharField(source="category.parent.name", allow_null=True)
    tags = TagSerializer(many=True)  # M2M
    tag_ids = serializers.PrimaryKeyRelatedField(source="tags", many=True, read_only=True)
    warranty = WarrantySerializer(read_only=True)  # reverse one-to-one
    reviews = ReviewSerializer(many=True)  # reverse FK, each with an FK
    pricing = PricingSerializer(source="*")
    label = serializers.ReadOnlyField()  # a model property with @requires
    review_count = serializers.SerializerMethodField()
    best_rating = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = [
            "id",
            "url",
            "name",
            "brand",
            "brand_name",
            "brand_url",
            "category",
            "category_name",
            "parent_category",
            "tags",
            "tag_ids",
            "warranty",
            "reviews",
            "pricing",
            "label",
            "review_count",
            "best_rating",
        ]

    @requires(annotate={"review_total": Count("reviews")})
    def get_review_count(self, product: Product) -> int:
        if hasattr(product, "review_total"):
            return product.review_total
        return Review.objects.filter(product=product).count()

    @requires(prefetch=["reviews__rating"])
    def get_best_rating(self, product: Product) -> int | None:
        return max((review.rating for review in product.reviews.all()), default=None)


LATEST_REVIEWS = Prefetch(
    "reviews", queryset=Review.objects.order_by("-id")[:2], to_attr="latest_reviews"
)


@requires(prefetch=[LATEST_REVIEWS])
class ProductDetailSerializer(ProductSerializer):
    """Adds the latest reviews, a declared Prefetch beside the derived ``reviews`` one."""

    latest_reviews = ReviewSerializer(many=True, read_only=True)

    class Meta(ProductSerializer.Meta):
        fields = [*ProductSerializer.Meta.fields, "latest_reviews"]


@requires(prefetch=[LATEST_REVIEWS])
class ProductWriteSerializer(serializers.ModelSerializer):
    """Writes by ids; renders names and the latest reviews, which a bare instance lacks."""

    tags = TagSerializer(many=True, read_only=True)
    tag_ids = serializers.PrimaryKeyRelatedField(
        source="tags", many=True, queryset=Tag.objects.all(), write_only=True
    )
    brand_name = serializers.CharField(source="brand.name", read_only=True)
    latest_reviews = ReviewSerializer(many=True, read_only=True)

    class Meta:
        model = Product
        fields = [
            "id",
            "name",
            "price",
            "brand",
            "category",
            "brand_name",
            "tags",
            "tag_ids",
            "latest_reviews",
        ]


class CategorySerializer(serializers.ModelSerializer):
    parent_name = serializers.CharField(source="parent.name", allow_null=True)
    grandparent_name = serializers.CharField(source="parent.parent.name", allow_null=True)

    class Meta:
        model = Category
        fields = ["id", "name", "parent_name", "grandparent_name"]


class CatalogProductSerializer(serializers.ModelSerializer):
    category = CategorySerializer()
    tags = TagSerializer(many=True)
    reviews = ReviewSerializer(many=True)

    class Meta:
        model = Product
        fields = ["id", "name", "category", "tags", "reviews"]


class BrandCatalogSerializer(serializers.ModelSerializer):
    """Many relations three deep: brand -> products -> reviews/tags -> customer."""

    products = CatalogProductSerializer(many=True)

    class Meta:
        model = Brand
        fields = ["id", "name", "products"]


class CategoryTreeSerializer(serializers.ModelSerializer):
    """A self-referencing FK both ways: the parent chain and the children."""

    children = CategorySerializer(many=True)
    parent_name = serializers.CharField(source="parent.name", allow_null=True)

    class Meta:
        model = Category
        fields = ["id", "name", "parent_name", "children"]


class WarrantyProductSerializer(serializers.ModelSerializer):
    """A forward one-to-one, with a prefetch below the join."""

    product = CatalogProductSerializer()

    class Meta:
        model = Warranty
        fields = ["id", "years", "product"]


class CountedProductSerializer(serializers.ModelSerializer):
    review_count = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "name", "review_count"]

    get_review_count = ProductSerializer.get_review_count


class ReviewProductSerializer(serializers.ModelSerializer):
    """An FK whose serializer needs an annotation: prefetched, as a join cannot annotate."""

    product = CountedProductSerializer()

    class Meta:
        model = Review
        fields = ["id", "rating", "product"]


@requires(annotate={"review_total": Count("reviews")})
class AnnotatedProductSerializer(serializers.ModelSerializer):
    """A plain field reading an annotation the serializer class declares."""

    review_total = serializers.IntegerField(read_only=True)

    class Meta:
        model = Product
        fields = ["id", "name", "review_total"]


class OpaqueProductSerializer(serializers.ModelSerializer):
    """What the planner cannot see: a method field and a property without @requires."""

    shouting_name = serializers.ReadOnlyField()
    brand_country = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "name", "shouting_name", "brand_country"]

    def get_brand_country(self, product: Product) -> str:
        return product.brand.country
