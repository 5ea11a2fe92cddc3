"""The catalog shop: brands, a category tree, tags, products, reviews, orders."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from drf_scale.cache import CachedManager

# The largest primary key (BigAutoField): a larger id in a query is a 400, never an overflow
# in the database driver (SQLite's OverflowError, PostgreSQL's DataError).
MAX_ID = 2**63 - 1


class Brand(models.Model):
    name = models.CharField(max_length=100, unique=True)

    objects = CachedManager()  # bulk writes invalidate cached representations

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Category(models.Model):
    name = models.CharField(max_length=100)
    parent = models.ForeignKey(
        "self", null=True, blank=True, related_name="children", on_delete=models.CASCADE
    )

    objects = CachedManager()  # bulk writes invalidate cached representations

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    objects = CachedManager()  # bulk writes invalidate cached representations

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived"

    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    brand = models.ForeignKey(Brand, related_name="products", on_delete=models.PROTECT)
    category = models.ForeignKey(Category, related_name="products", on_delete=models.PROTECT)
    tags = models.ManyToManyField(Tag, related_name="products", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CachedManager()  # bulk writes invalidate cached representations

    class Meta:
        indexes = [
            models.Index(fields=["created_at", "id"], name="product_created_id"),
            models.Index(fields=["category", "created_at", "id"], name="product_cat_created_id"),
            models.Index(fields=["price", "id"], name="product_price_id"),
        ]

    def __str__(self) -> str:
        return self.sku


class Review(models.Model):
    product = models.ForeignKey(Product, related_name="reviews", on_delete=models.CASCADE)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, related_name="reviews", on_delete=models.CASCADE
    )
    rating = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CachedManager()  # bulk writes invalidate cached representations

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "user"], name="one_review_per_user"),
            models.CheckConstraint(
                condition=models.Q(rating__gte=1, rating__lte=5), name="rating_1_to_5"
            ),
        ]
        indexes = [models.Index(fields=["product", "-created_at"], name="review_product_latest")]


class Order(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, related_name="orders", on_delete=models.PROTECT
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)


class OrderLine(models.Model):
    order = models.ForeignKey(Order, related_name="lines", on_delete=models.CASCADE)
    product = models.ForeignKey(Product, related_name="order_lines", on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
